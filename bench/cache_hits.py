"""What a response-cache hit costs and how many the gateway serves, against the upstream itself.

    .venv/bin/python bench/cache_hits.py                 # 4 s load runs; c=1 latency and c=64 throughput
    .venv/bin/python bench/cache_hits.py --baseline-src ../main/src   # also: main's code, no cache (the off path)

One run, same machine, same moment, five targets:

    direct        the upstream alone (nginx: a fixed chat.completion; the SSE server: 20 chunks, paced)
    uncached      llmmux in front of it, on a route without a cache
    hit           llmmux on a route with `cache: exact`, every request the same (a hit after the first)
    (baseline)    with --baseline-src: the uncached route on other source (e.g. main), to show that
                  turning the cache off costs nothing

Latency: N sequential requests on one keep-alive connection (c=1), p50/p99 of the whole
response (streams: to the last byte). Throughput: 64 keep-alive connections for --duration
seconds, completed requests per second. The load generator is raw asyncio sockets (wrk is
not needed), run in this process; the gateway and upstreams are separate processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fake_upstreams import free_port, running
from measure import wait_health
from payloads import request_body

CONFIG = """providers:
  fake: {{type: openai_compatible, base_url: "http://127.0.0.1:{json_port}/v1", models: [bench-model]}}
  fakestream: {{type: openai_compatible, base_url: "http://127.0.0.1:{sse_port}/v1", models: [bench-stream]}}
routing:
  exact_matches:
    uncached: {{provider: fake, model: bench-model}}
    hit: {{provider: fake, model: bench-model}}
    uncached-stream: {{provider: fakestream, model: bench-stream}}
    hit-stream: {{provider: fakestream, model: bench-stream}}
{cache}ledger: {{enabled: false}}
logging: {{requests: false}}
"""
CACHE = """routing_strategy:
  routes:
    hit: {cache: exact}
    hit-stream: {cache: exact}
"""
PATH = "/v1/chat/completions"


def raw_request(port: int, model: str, stream: bool) -> bytes:
    body = request_body(model, stream).encode()
    head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected answer: {head[:200]!r}")
    if b"content-length:" in lower:
        at = lower.index(b"content-length:") + len(b"content-length:")
        return await reader.readexactly(int(lower[at : lower.index(b"\r\n", at)]))
    body = b""
    while not body.endswith(b"0\r\n\r\n"):
        body += await reader.read(65536)
    return body


async def sequential(port: int, request: bytes, n: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            writer.write(request)
            await read_response(reader)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        writer.close()
    return sorted(times)


async def load(port: int, request: bytes, connections: int, seconds: float) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at:
                writer.write(request)
                await read_response(reader)
                done += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    return done / (time.perf_counter() - started)


def start_gateway(folder: Path, port: int, src: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.Popen(
        [sys.executable, "-m", "llmmux", "serve", "--config", str(folder), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(port: int, model: str, stream: bool, args: argparse.Namespace) -> dict[str, float]:
    request = raw_request(port, model, stream)
    asyncio.run(sequential(port, request, 20))  # warm up (and fill the cache)
    times = asyncio.run(sequential(port, request, args.requests))
    rps = asyncio.run(load(port, request, args.connections, args.duration))
    return {
        "p50_ms": round(times[len(times) // 2], 3),
        "p99_ms": round(times[int(len(times) * 0.99)], 3),
        "rps": round(rps),
    }


def measure_cache(
    results: dict[str, dict[str, float]],
    json_port: int,
    sse_port: int,
    folder: Path,
    src: Path,
    args: argparse.Namespace,
) -> None:
    """The upstream alone, then llmmux uncached and hitting, plain and streamed."""
    for stream, direct in ((False, json_port), (True, sse_port)):
        suffix = "-stream" if stream else ""
        results[f"direct{suffix}"] = measure(direct, "bench", stream, args)
    port = free_port()
    gateway = start_gateway(folder, port, src)
    try:
        wait_health(port, proc=gateway)
        for stream in (False, True):
            suffix = "-stream" if stream else ""
            results[f"uncached{suffix}"] = measure(port, f"uncached{suffix}", stream, args)
            results[f"hit{suffix}"] = measure(port, f"hit{suffix}", stream, args)
    finally:
        gateway.terminate()
        gateway.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of each throughput run")
    parser.add_argument("--requests", type=int, default=500, help="sequential requests for the c=1 latency")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pace-ms", type=float, default=2.0, help="the SSE upstream's delay per chunk (20 chunks)")
    parser.add_argument("--baseline-src", type=Path, default=None, help="also run this source tree without a cache")
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate the off-path runs (this tree, baseline) N times"
    )
    parser.add_argument("--off-only", action="store_true", help="only the off-path comparison")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    src = HERE.parent / "src"
    with running(sse_pace_ms=args.pace_ms) as (json_port, sse_port), tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for name, cache in (("cache", CACHE), ("off", "")):
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "llmmux.yaml").write_text(CONFIG.format(json_port=json_port, sse_port=sse_port, cache=cache))
            folders[name] = folder
        if not args.off_only:
            measure_cache(results, json_port, sse_port, folders["cache"], src, args)
        for round_ in range(1, args.rounds + 1):
            for label, tree in (("off (this tree)", src), ("baseline", args.baseline_src)):
                if tree is None:
                    continue
                port = free_port()
                gateway = start_gateway(folders["off"], port, tree.resolve())
                try:
                    wait_health(port, proc=gateway)
                    results[f"{label} #{round_}"] = measure(port, "uncached", False, args)
                finally:
                    gateway.terminate()
                    gateway.wait(10)
    print(json.dumps(results, indent=2))
    print("\n| target | c=1 p50 ms | c=1 p99 ms | c=64 req/s |\n|---|---:|---:|---:|")
    for name, row in results.items():
        print(f"| {name} | {row['p50_ms']} | {row['p99_ms']} | {row['rps']} |")


if __name__ == "__main__":
    main()
