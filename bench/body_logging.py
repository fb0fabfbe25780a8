"""What storing request bodies (`logging.bodies`) costs the gateway's throughput at c=64.

Two `llmmux serve` gateways (uvicorn, uvloop, httptools, one worker each) run side by side
in front of one fake OpenAI upstream, both with the SQLite ledger and metrics on and the
per-request log line off, so the only difference is the body store: one has
`logging.bodies: true` (every prompt and reply encoded, redacted, cut and written to
`request_bodies` with its FTS5 index), the other has it off. Every client connection
sends each request to both in turn, and each gateway's CPU time is read from /proc: a
gateway under full load is CPU-bound, so its throughput cost is its CPU cost per request.
The median over rounds of the paired cost is reported (the issue's bar: at most 5%), for
three measures: all threads plus the body redactor's child process (the CPU a box pays),
the event loop alone, and the event loop plus the body log's thread (what bounds one
worker's throughput under the GIL while other cores run SQLite and the redactor).

    python bench/body_logging.py                          # 5 rounds of 4,000 requests per gateway, c=64
    python bench/body_logging.py --prompt-bytes 4000 --stream-share 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger_overhead import TESTS, cpu_seconds, quiet_logs


def thread_cpu_seconds(pid: int, tid: int) -> float:
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_cpu_seconds(pid: int) -> float:
    """CPU of the main thread alone: the event loop, which bounds throughput when other cores are free."""
    return thread_cpu_seconds(pid, pid)


def with_children_cpu_seconds(pid: int) -> float:
    """The gateway and its live children (the body redactor process): all the CPU the box pays."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):
            total += cpu_seconds(int(child))
    return total


def gil_cpu_seconds(pid: int) -> float:
    """The event loop plus the body log's thread (named by llmmux): both run Python, so both hold
    the GIL, and the time one holds it the other waits. The ledger's SQLite thread is left out:
    SQLite (the inserts, the full-text index) runs with the GIL released, on another core."""
    total = loop_cpu_seconds(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().strip() == "llmmux-bodies":
            total += thread_cpu_seconds(pid, int(task.name))
    return total


CONFIG = """
ledger: {{path: {ledger}}}
logging: {{requests: false, bodies: {bodies}}}
providers:
  up: {{type: openai_compatible, base_url: "{url}", models: [{{name: m, pricing: {{input: 1, output: 2}}}}]}}
routing:
  exact_matches:
    chat: {{provider: up, model: m}}
"""


def start(folder: Path, upstream: str, bodies: bool) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    from support import free_port

    name = "bodies" if bodies else "plain"
    config = folder / f"{name}.yaml"
    config.write_text(CONFIG.format(ledger=folder / f"{name}.db", bodies=str(bodies).lower(), url=upstream))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llmmux", "serve", "-c", str(config), "-p", str(port), "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(1000):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.02)
    return process, f"http://127.0.0.1:{port}/v1/chat/completions"


async def load(urls: list[str], requests: int, concurrency: int, stream_share: float, prompt: str) -> None:
    import aiohttp

    every = round(1 / stream_share) if stream_share else 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency * len(urls))) as session:

        async def worker(start: int) -> None:
            for i in range(start, requests, concurrency):
                body = {
                    "model": "chat",
                    "stream": bool(every and i % every == 0),
                    "messages": [
                        {"role": "system", "content": "be brief"},
                        {"role": "user", "content": f"{i} {prompt}"},
                    ],
                }
                for url in urls:
                    async with session.post(url, json=body) as response:
                        await response.read()
                        assert response.status == 200, response.status

        await asyncio.gather(*(worker(i) for i in range(concurrency)))


def rounds(folder: Path, args: argparse.Namespace) -> dict[str, dict[bool, list[float]]]:
    from upstreams import FakeOpenAI

    prompt = ("the quick brown fox jumps over the lazy dog " * (args.prompt_bytes // 44 + 1))[: args.prompt_bytes]
    cpu: dict[bool, list[float]] = {False: [], True: []}
    loop: dict[bool, list[float]] = {False: [], True: []}
    gil: dict[bool, list[float]] = {False: [], True: []}
    with FakeOpenAI() as upstream:
        gateways = {on: start(folder, upstream.url, on) for on in (False, True)}
        urls = [gateways[False][1], gateways[True][1]]
        try:
            asyncio.run(load(urls, args.requests // 10, args.concurrency, args.stream_share, prompt))  # warm up
            for i in range(args.rounds):
                before = {on: with_children_cpu_seconds(p.pid) for on, (p, _) in gateways.items()}
                before_loop = {on: loop_cpu_seconds(p.pid) for on, (p, _) in gateways.items()}
                before_gil = {on: gil_cpu_seconds(p.pid) for on, (p, _) in gateways.items()}
                ordered = urls if i % 2 == 0 else urls[::-1]
                asyncio.run(load(ordered, args.requests, args.concurrency, args.stream_share, prompt))
                time.sleep(1.5)  # the last batch of bodies is written: part of the cost
                for on, (process, _) in gateways.items():
                    used = (with_children_cpu_seconds(process.pid) - before[on]) / args.requests * 1e6
                    in_loop = (loop_cpu_seconds(process.pid) - before_loop[on]) / args.requests * 1e6
                    holding = (gil_cpu_seconds(process.pid) - before_gil[on]) / args.requests * 1e6
                    cpu[on].append(used)
                    loop[on].append(in_loop)
                    gil[on].append(holding)
                    print(
                        f"round {i + 1} bodies {'on ' if on else 'off'}: {used:7.1f} us CPU a request, "
                        f"{in_loop:7.1f} us of it on the event loop, {holding:7.1f} us holding the GIL",
                        flush=True,
                    )
        finally:
            for process, _ in gateways.values():
                process.terminate()
                process.wait(30)
    return {"all threads and the redactor process": cpu, "event loop": loop, "event loop + body thread (GIL)": gil}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=4000, help="per gateway and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stream-share", type=float, default=0.25, help="share of streamed requests")
    parser.add_argument("--prompt-bytes", type=int, default=1000)
    args = parser.parse_args()
    quiet_logs()
    sys.path.insert(0, str(TESTS))
    with tempfile.TemporaryDirectory() as name:
        measured = rounds(Path(name), args)
    print(f"\nc={args.concurrency}, {args.prompt_bytes}-byte prompts, {args.stream_share:.0%} streamed:")
    for label, cpu in measured.items():
        costs = sorted(1 - off / on for off, on in zip(cpu[False], cpu[True]))
        print(
            f"  {label}: CPU a request, median {statistics.median(cpu[False]):.1f} us without bodies, "
            f"{statistics.median(cpu[True]):.1f} us with; throughput cost when it is the bottleneck: median "
            f"{statistics.median(costs):.1%} (rounds {costs[0]:.1%} to {costs[-1]:.1%})"
        )


if __name__ == "__main__":
    main()
