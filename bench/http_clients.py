"""Which HTTP client for upstream calls: the candidates side by side, in one run (issue 18).

    python bench/http_clients.py                        # 3 rounds, 2 s per run, c=64
    python bench/http_clients.py --rounds 5 --concurrency 1,64
    PYTHONPATH=/tmp/libs python bench/http_clients.py   # pyreqwest, rnet, aiosonic from elsewhere

Every candidate runs in its own process on uvloop, `concurrency` tasks sending back to back
to the fast fake upstreams (nginx's fixed chat.completion; the uvloop server's 20-event
streams, read chunk by chunk as the gateway does). Each round runs every candidate in turn,
so a round's numbers share the same moment of a shared machine. Reported per cell (median
over rounds): requests/s and CPU µs per request of the client's process (all its threads:
a Rust client's runtime threads count too), and the ratio of CPU µs to the first row.

Candidates: `http1` (llmmux's own client, providers/http1.py, through `Http1Transport`),
`aiohttp` (as the `AiohttpTransport` it replaced used it, same settings), and `pyreqwest`, `rnet`, `aiosonic` where
importable (they are not project dependencies: install them into a folder on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent / "src"))

import fake_upstreams
from payloads import MODEL

REQUEST_BODY = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hello!"}]}).encode()
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench-not-a-secret"}
CANDIDATES = ("http1", "aiohttp", "pyreqwest", "rnet", "aiosonic")


class Llmmux:
    """llmmux's transport, as a provider drives it."""

    def __init__(self) -> None:
        from llmmux.providers import transport

        self.t = transport.Http1Transport(timeout=60, connect_timeout=10, read_timeout=None, max_connections=256)
        self.UpstreamRequest = transport.UpstreamRequest

    async def post(self, url: str) -> int:
        r = await self.t.send(self.UpstreamRequest("POST", url, HEADERS, REQUEST_BODY))
        return len(r.body)

    async def stream(self, url: str) -> int:
        n = 0
        async with self.t.open_stream(self.UpstreamRequest("POST", url, HEADERS, REQUEST_BODY)) as r:
            async for chunk in r.chunks:
                n += len(chunk)
        return n


class Aiohttp:
    """aiohttp as llmmux's `AiohttpTransport` used it until this measurement (same settings)."""

    def __init__(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=60, connect=10, sock_read=60)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",))

    async def post(self, url: str) -> int:
        async with self.session.request("POST", url, data=REQUEST_BODY, headers=HEADERS) as r:
            return len(await r.read())

    async def stream(self, url: str) -> int:
        n = 0
        async with self.session.request("POST", url, data=REQUEST_BODY, headers=HEADERS) as r:
            async for chunk in r.content.iter_any():
                n += len(chunk)
        return n

    async def aclose(self) -> None:
        await self.session.close()


class Pyreqwest:
    def __init__(self) -> None:
        from pyreqwest.client import ClientBuilder

        self.client = ClientBuilder().max_connections(256).pool_max_idle_per_host(256).build()

    async def post(self, url: str) -> int:
        r = await self.client.post(url).headers(HEADERS).body_bytes(REQUEST_BODY).build().send()
        return len(await r.bytes())

    async def stream(self, url: str) -> int:
        n = 0
        async with self.client.post(url).headers(HEADERS).body_bytes(REQUEST_BODY).build_streamed() as r:
            while (chunk := await r.body_reader.read_chunk()) is not None:
                n += len(chunk)
        return n


class Rnet:
    def __init__(self) -> None:
        import rnet

        self.client = rnet.Client()

    async def post(self, url: str) -> int:
        r = await self.client.post(url, headers=HEADERS, body=REQUEST_BODY)
        return len(await r.bytes())

    async def stream(self, url: str) -> int:
        n = 0
        r = await self.client.post(url, headers=HEADERS, body=REQUEST_BODY)
        async with r.stream() as chunks:
            async for chunk in chunks:
                n += len(chunk)
        return n


class Aiosonic:
    def __init__(self) -> None:
        import aiosonic

        self.client = aiosonic.HTTPClient()

    async def post(self, url: str) -> int:
        r = await self.client.post(url, data=REQUEST_BODY, headers=HEADERS)
        return len(await r.content())

    async def stream(self, url: str) -> int:
        n = 0
        r = await self.client.post(url, data=REQUEST_BODY, headers=HEADERS)
        async for chunk in r.read_chunks():
            n += len(chunk)
        return n


def client(name: str) -> object:
    return {"http1": Llmmux, "aiohttp": Aiohttp, "pyreqwest": Pyreqwest, "rnet": Rnet, "aiosonic": Aiosonic}[name]()


async def drive(name: str, url: str, stream: bool, concurrency: int, seconds: float) -> dict:
    c = client(name)
    call = c.stream if stream else c.post  # type: ignore[attr-defined]
    assert await call(url) > 0  # warm: connections open, imports done
    done = 0
    stop = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await call(url)
            done += 1

    cpu0, t0 = _cpu(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = _cpu() - cpu0, time.monotonic() - t0
    if isinstance(c, Llmmux):
        await c.t.aclose()
    elif isinstance(c, Aiohttp):
        await c.aclose()
    return {"requests": done, "rps": done / wall, "cpu_us": cpu / max(1, done) * 1e6}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


def one(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(drive(args.one, args.url, args.stream, args.concurrency, args.duration))
    print(json.dumps(result))


def available(name: str) -> bool:
    if name in ("http1", "aiohttp"):
        return True
    probe = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
    return probe.returncode == 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=2.0)
    p.add_argument("--concurrency", default="64", help="comma-separated (default 64)")
    p.add_argument("--only", help="comma-separated candidates")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        args.concurrency = int(args.concurrency)
        return one(args)
    names = [n for n in (args.only.split(",") if args.only else CANDIDATES) if available(n)]
    loads = [(s, int(c)) for c in args.concurrency.split(",") for s in (False, True)]
    cells: dict[tuple[str, bool, int], list[dict]] = {}
    when, load = time.strftime("%Y-%m-%d %H:%M", time.gmtime()), os.getloadavg()
    with fake_upstreams.running() as (json_port, sse_port):
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}", file=sys.stderr)
            for stream, conc in loads:
                url = f"http://127.0.0.1:{sse_port if stream else json_port}/v1/chat/completions"
                for name in names:
                    cmd = [sys.executable, __file__, "--one", name, "--url", url, "--concurrency", str(conc)]
                    cmd += ["--duration", str(args.duration)] + (["--stream"] if stream else [])
                    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
                    cells.setdefault((name, stream, conc), []).append(json.loads(out.stdout.splitlines()[-1]))
    print(
        f"{when} UTC, load average at start {' '.join(f'{x:.1f}' for x in load)}, {args.rounds} rounds of "
        f"{args.duration:g} s, medians over rounds; CPU µs per request of the client's whole process\n"
    )
    head = " | ".join(f"{'stream' if s else 'json'} c={c}: req/s, CPU µs (ratio)" for s, c in loads)
    print(f"| client | {head} |\n|---|{'---|' * len(loads)}")
    for name in names:
        row = []
        for stream, conc in loads:
            runs, base = cells[(name, stream, conc)], cells[(names[0], stream, conc)]
            cpu = statistics.median(r["cpu_us"] for r in runs)
            ratio = statistics.median(r["cpu_us"] / b["cpu_us"] for r, b in zip(runs, base, strict=True))
            row.append(f"{statistics.median(r['rps'] for r in runs):,.0f}, {cpu:.0f} ({ratio:.2f})")
        print(f"| {name} | {' | '.join(row)} |")


if __name__ == "__main__":
    main()
