"""What the ledger, metrics and request logs cost the gateway's throughput.

`--mode http` (the default) runs two gateways as users run them (`llmmux serve`: uvicorn,
uvloop, httptools, one worker each) in front of one fake OpenAI upstream: one with the
SQLite ledger (WAL) and metrics on (`--logs`: and a JSON line per request), one with
them off. Every client connection sends each request to both in turn, so both live
through the same moments of a shared machine, and each gateway's CPU time is read from
/proc. A gateway under full load is CPU-bound, so its throughput is inversely
proportional to its CPU per request; CPU time stays honest where wall-clock rates on a
busy machine do not. Each round gives one paired cost; their median is reported.

`--mode asgi` drives the ASGI app in-process against an upstream that answers at once:
llmmux's own CPU per request with nothing else around it, the harshest denominator.

    python bench/ledger_overhead.py                      # http: 5 rounds of 5,000 requests per gateway
    python bench/ledger_overhead.py --logs               # the same with a log line per request
    python bench/ledger_overhead.py --mode asgi --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import msgspec

from asgi_post import post_chat
from llmmux.accounting import Accounting
from llmmux.config import config_from_dict
from llmmux.logs import JSONFormatter, Masker
from llmmux.providers.base import ProviderType
from llmmux.providers.openai import OpenAIProvider
from llmmux.router import Router
from llmmux.server.app import App
from llmmux.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Message,
    ModelInfo,
    Usage,
)

USAGE = Usage(prompt_tokens=12, completion_tokens=8, total_tokens=20)


class InstantProvider(OpenAIProvider):
    """An upstream with no latency: every microsecond measured is llmmux's.

    Chat and streams answer in-process; health probes go over HTTP to a live fake upstream
    (`upstream_url`), as a real provider's would, so the provider stays healthy.
    """

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        return ChatResponse(
            id="r",
            model=model,
            created=0,
            usage=USAGE,
            choices=[Choice(message=Message(role="assistant", content="hello there"), finish_reason="stop")],
        )

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        for text in ("hel", "lo ", "there"):
            yield ChatChunk(id="r", model=model, created=0, choices=[ChunkChoice(delta=Delta(content=text))])
        yield ChatChunk(id="r", model=model, created=0, choices=[], usage=USAGE)

    async def list_models(self) -> list[ModelInfo]:
        return []


def build(ledger: Path | None, upstream_url: str) -> App:
    config, _ = config_from_dict(
        {
            "ledger": {"path": str(ledger)} if ledger else {"enabled": False},
            "providers": {
                "fast": {
                    "type": "instant",
                    "base_url": upstream_url,
                    "models": [{"name": "m", "pricing": {"input": 1, "output": 2}}],
                }
            },
            "routing": {"exact_matches": {"chat": {"provider": "fast", "model": "m"}}},
        }
    )
    router = Router(config, types={"instant": ProviderType("instant", InstantProvider, health_endpoint="/v1/models")})
    accounting = Accounting.from_config(router)
    if ledger is None:
        accounting.detach()  # nothing subscribed: the baseline
    return App(router, accounting=accounting)


async def lifespan(app: App, phase: str) -> None:
    messages = asyncio.Queue[dict[str, Any]]()
    await messages.put({"type": f"lifespan.{phase}"})
    replies: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        replies.append(message)

    task = asyncio.create_task(app({"type": "lifespan"}, messages.get, send))
    while not replies:
        await asyncio.sleep(0)
    if phase == "startup":
        task.cancel()  # the app would wait for shutdown; this round drives it by hand
    else:
        await task


async def round_trip(app: App, requests: int, concurrency: int, stream_share: float) -> tuple[float, float]:
    """(requests per second, CPU microseconds per request): the second holds up on a busy machine."""
    plain = msgspec.json.encode({"model": "chat", "messages": [{"role": "user", "content": "hello"}]})
    streamed = msgspec.json.encode(
        {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "hello"}]}
    )
    every = round(1 / stream_share) if stream_share else 0
    bodies = [streamed if every and i % every == 0 else plain for i in range(requests)]
    await lifespan(app, "startup")
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, requests, concurrency):
        await asyncio.gather(*(post_chat(app, b) for b in bodies[i : i + concurrency]))
    await lifespan(app, "shutdown")  # the last ledger batch and log lines are part of the cost
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return requests / elapsed, cpu / requests * 1e6


def quiet_logs() -> None:
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(JSONFormatter(Masker()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("llmmux.accounting").setLevel(logging.WARNING)


HTTP_CONFIG = """
ledger: {ledger}
logging: {{requests: {logs}}}
metrics: {{enabled: {on}}}
providers:
  up: {{type: openai_compatible, base_url: "{url}", models: [{{name: m, pricing: {{input: 1, output: 2}}}}]}}
routing:
  exact_matches:
    chat: {{provider: up, model: m}}
"""
TESTS = Path(__file__).resolve().parent.parent / "tests"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def load(urls: list[str], requests: int, concurrency: int, stream_share: float) -> None:
    """`requests` requests to each URL, taking turns on every connection, so both see the same machine."""
    import aiohttp

    every = round(1 / stream_share) if stream_share else 0
    connector = aiohttp.TCPConnector(limit=concurrency * len(urls))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(start: int) -> None:
            for i in range(start, requests, concurrency):
                body = {
                    "model": "chat",
                    "stream": bool(every and i % every == 0),
                    "messages": [{"role": "user", "content": "hello there"}],
                }
                for url in urls:
                    async with session.post(url, json=body) as response:
                        await response.read()
                        assert response.status == 200, response.status

        await asyncio.gather(*(worker(i) for i in range(concurrency)))


def start_gateway(folder: Path, upstream_url: str, on: bool, logs: bool) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    from support import free_port

    config = folder / ("on.yaml" if on else "off.yaml")
    ledger = f"{{path: {folder / 'ledger.db'}}}" if on else "{enabled: false}"
    logs = logs and on
    config.write_text(HTTP_CONFIG.format(ledger=ledger, on=str(on).lower(), logs=str(logs).lower(), url=upstream_url))
    port = free_port()
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmmux",
            "serve",
            "-c",
            str(config),
            "-p",
            str(port),
            "--log-level",
            "info" if logs else "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.02)
    return gateway, f"http://127.0.0.1:{port}/v1/chat/completions"


def http_rounds(folder: Path, args: argparse.Namespace) -> dict[bool, list[tuple[float, float]]]:
    """Both gateways run side by side and share every round: paired measurements."""
    from upstreams import FakeOpenAI

    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    with FakeOpenAI() as upstream:
        gateways = {on: start_gateway(folder, upstream.url, on, args.logs) for on in (False, True)}
        urls = [gateways[False][1], gateways[True][1]]
        try:
            asyncio.run(load(urls, args.requests // 10, args.concurrency, args.stream_share))  # warm up
            for i in range(args.rounds):
                before = {on: cpu_seconds(g.pid) for on, (g, _) in gateways.items()}
                started = time.perf_counter()
                asyncio.run(
                    load(urls if i % 2 == 0 else urls[::-1], args.requests, args.concurrency, args.stream_share)
                )
                rate = args.requests / (time.perf_counter() - started)
                for on, (gateway, _) in gateways.items():
                    used = (cpu_seconds(gateway.pid) - before[on]) / args.requests * 1e6
                    results[on].append((rate, used))
                    print(
                        f"round {i + 1} accounting {'on ' if on else 'off'}: {used:7.1f} us CPU a request", flush=True
                    )
        finally:
            for gateway, _ in gateways.values():
                gateway.terminate()
                gateway.wait(30)
    return results


@contextlib.contextmanager
def live_upstream() -> Iterator[str]:
    """The fake OpenAI server the http mode uses (tests/upstreams): it answers `build`'s health probes."""
    from upstreams import FakeOpenAI

    with FakeOpenAI() as upstream:
        yield upstream.url


def asgi_rounds(folder: Path, args: argparse.Namespace) -> dict[bool, list[tuple[float, float]]]:
    with live_upstream() as url:
        return asgi_rounds_against(folder, args, url)


def asgi_rounds_against(folder: Path, args: argparse.Namespace, url: str) -> dict[bool, list[tuple[float, float]]]:
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for i in range(args.rounds):
        for on in (False, True) if i % 2 == 0 else (True, False):
            ledger = folder / f"round{i}.db" if on else None
            with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                result = asyncio.run(round_trip(build(ledger, url), args.requests, args.concurrency, args.stream_share))
            results[on].append(result)
            print(
                f"round {i + 1} accounting {'on ' if on else 'off'}: {result[0]:8,.0f} requests/s, "
                f"{result[1]:7.1f} us CPU a request",
                flush=True,
            )
    return results


def report(results: dict[bool, list[tuple[float, float]]], mode: str) -> None:
    """The median of the per-round costs: each round's two numbers were measured together."""
    costs = sorted(1 - off / on for (_, off), (_, on) in zip(results[False], results[True]))
    cpu_off, cpu_on = (statistics.median(c for _, c in results[k]) for k in (False, True))
    print(
        f"\n{mode}: CPU a request, median {cpu_off:.1f} us off, {cpu_on:.1f} us on; throughput cost when "
        f"CPU-bound: median {statistics.median(costs):.1%} (rounds {costs[0]:.1%} to {costs[-1]:.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("http", "asgi"), default="http")
    parser.add_argument("--requests", type=int, default=5000, help="per gateway and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream-share", type=float, default=0.25, help="share of streamed requests")
    parser.add_argument("--logs", action="store_true", help="http: also write a JSON line per request (to /dev/null)")
    args = parser.parse_args()
    quiet_logs()
    sys.path.insert(0, str(TESTS))
    with tempfile.TemporaryDirectory() as name:
        rounds = http_rounds if args.mode == "http" else asgi_rounds
        report(rounds(Path(name), args), args.mode)


if __name__ == "__main__":
    main()
