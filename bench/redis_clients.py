"""Which Redis client for shared state: redis-py (hiredis parser, or pure Python), coredis,
valkey-glide, on the operation a limited request needs when it asks the store (the acquire
script of `llmmux.shared.redis_store`), against a redis-server started here.

Reported per client, rounds interleaved: microseconds per call at c=1 (sequential, the wall
time a request waits) and calls/s at c=64 with the client process's CPU per call (what the
gateway's event loop pays). Clients not installed are skipped.

    python bench/redis_clients.py                     # 3 rounds of 5,000 calls each way
    PYTHONPATH=/tmp/cdeps python bench/redis_clients.py --rounds 2 --calls 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from llmmux.shared.redis_store import ACQUIRE
from shared_state import redis_server

KEYS = ["b:b:rpm.k", "b:b:tpm.k", "b:c:k", "", "b:h:k"]
ARGS: list[Any] = [1_000_000_000, 0, 0, 100_000, "inst", 5.0, "0.0", 1, 0, 1, 0]
Call = Callable[[], Awaitable[Any]]


async def redis_py(url: str, hiredis: bool) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import redis.asyncio as redis
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser

    parser = _AsyncHiredisParser if hiredis else _AsyncRESP2Parser
    client = redis.Redis.from_url(url, parser_class=parser, max_connections=256)
    script = client.register_script(ACQUIRE)
    return (lambda: script(keys=KEYS, args=ARGS)), client.aclose


async def coredis_client(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    import coredis

    client: Any = coredis.Redis.from_url(url)
    await client.__aenter__()  # coredis 6 runs its pool inside the client's context
    script = client.register_script(ACQUIRE)

    async def close() -> None:
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)

    return (lambda: script(keys=KEYS, args=ARGS)), close


async def glide_client(url: str) -> tuple[Call, Callable[[], Awaitable[None]]]:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script

    port = int(url.rsplit(":", 1)[1].split("/")[0])
    client = await GlideClient.create(GlideClientConfiguration([NodeAddress("127.0.0.1", port)]))
    script = Script(ACQUIRE)
    args = [str(a) for a in ARGS]
    return (lambda: client.invoke_script(script, keys=KEYS, args=args)), client.close


CLIENTS: dict[str, Callable[[str], Awaitable[tuple[Call, Callable[[], Awaitable[None]]]]]] = {
    "redis-py + hiredis": lambda url: redis_py(url, True),
    "redis-py, pure Python": lambda url: redis_py(url, False),
    "coredis": coredis_client,
    "valkey-glide": glide_client,
}


async def measure(make: Callable[[str], Awaitable[tuple[Call, Any]]], url: str, calls: int) -> dict[str, float]:
    call, close = await make(url)
    for _ in range(200):
        await call()
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    sequential = (time.perf_counter() - started) / calls
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(0, calls, 64):
        await asyncio.gather(*(call() for _ in range(64)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await close()
    return {"us": sequential * 1e6, "rps": calls / elapsed, "cpu_us": cpu / calls * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as folder, redis_server(Path(folder)) as (url, _):
        for i in range(args.rounds):
            names = list(CLIENTS) if i % 2 == 0 else list(CLIENTS)[::-1]
            for name in names:
                try:
                    result = asyncio.run(measure(CLIENTS[name], url, args.calls))
                except ImportError as exc:
                    print(f"{name}: skipped ({exc})")
                    continue
                results.setdefault(name, []).append(result)
                print(f"round {i + 1} {name:22}: {result['us']:6.1f} us a call at c=1, "
                      f"{result['rps']:8,.0f} calls/s at c=64, {result['cpu_us']:5.1f} us CPU a call", flush=True)  # fmt: skip
    print("\n| client | us a call at c=1 | calls/s at c=64 | client CPU a call |\n|---|---|---|---|")
    for name, rows in results.items():
        us, rps, cpu = (statistics.median(r[k] for r in rows) for k in ("us", "rps", "cpu_us"))
        print(f"| {name} | {us:.0f} | {rps:,.0f} | {cpu:.0f} us |")


if __name__ == "__main__":
    main()
