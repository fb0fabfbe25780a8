"""What sharing state costs: in-memory vs the one-box holder vs Redis, the same run.

The ASGI app is driven in-process against an upstream that answers at once (as in
`ledger_overhead.py --mode asgi`), with a virtual key's rpm, tpm and budget and a provider's
rpm, tpm and max_concurrency active (the model priced, so every request spends), so every
request takes what a limited request takes: the key's buckets and spend on admission, the
provider's buckets and a concurrency lease per attempt, the tokens and cost settled after.
Three apps, identical but for where that state lives:

    memory   one process, `InMemoryState` (today's default)
    holder   `--workers N` on one box: the holder in its own process, over a Unix socket
    redis    `state: {url: redis://...}`: a redis-server started here (Debian's), hiredis parser

Reported per mode, rounds interleaved so all see the same machine: added p50 at c=1
(sequential requests, per-request wall time) against memory, and requests/s at c=64 with
the gateway's CPU per request (the holder's or Redis's own CPU shown apart).

    python bench/shared_state.py                  # 5 rounds; 3,000 requests at c=1, 20,000 at c=64
    python bench/shared_state.py --rounds 3 --requests 1000 --throughput-requests 5000
    python bench/shared_state.py --rpm 3000000 --max-concurrency 1024   # limits nearer the load

Each instance leases slices of a limit of at most 1/64 of it (`llmmux/shared/quota.py`), so
limits far above the load (the default) show the floor, and limits nearer the load show
more round trips to the store. Run it with PYTHONPATH naming another checkout's src/ to
measure that code on the same machine (before/after).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec

from asgi_post import post_chat
from ledger_overhead import InstantProvider, lifespan, quiet_logs
from llmmux.accounting import Accounting
from llmmux.config import config_from_dict
from llmmux.keys import make_key
from llmmux.providers.base import ProviderType
from llmmux.router import Router
from llmmux.server.app import App
from llmmux.shared import Shared
from llmmux.shared.holder import HolderStore, run_holder
from llmmux.shared.redis_store import RedisStore

MODES = tuple(os.environ.get("BENCH_MODES", "memory,holder,redis").split(","))
LIMITS = {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000, "max_concurrency": 100_000}
BUDGET_USD = 1_000_000_000.0  # the key's: far above what a run spends, as the limits are
BODY = msgspec.json.encode({"model": "chat", "messages": [{"role": "user", "content": "hello"}]})


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def holder_process(folder: Path) -> Iterator[tuple[str, int]]:
    path = str(folder / "state.sock")
    process = multiprocessing.get_context("fork").Process(target=run_holder, args=(path,))
    process.start()
    while not os.path.exists(path):
        time.sleep(0.01)
    try:
        assert process.pid is not None
        yield path, process.pid
    finally:
        process.terminate()
        process.join(10)


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[tuple[str, int]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support import free_port

    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    try:
        yield f"redis://127.0.0.1:{port}/0", process.pid
    finally:
        process.terminate()
        process.wait(10)


def build_router(mode: str, where: str | None) -> Router:
    """A router for `mode` (memory, holder or redis at `where`) with LIMITS on its one instant provider."""
    config, _ = config_from_dict(
        {
            "ledger": {"enabled": False},
            "metrics": {"enabled": False},
            "logging": {"requests": False},
            "providers": {
                "fast": {
                    "type": "instant",
                    "base_url": "http://127.0.0.1:9/v1",
                    "models": [{"name": "m", "pricing": {"input": 1, "output": 2}}],
                },
            },
            "routing": {"exact_matches": {"chat": {"provider": "fast", "model": "m"}}},
            "rate_limit_settings": {"limits": {"fast": LIMITS}},
            "health_checks": {"enabled": False},  # the instant provider has no health endpoint
        }
    )
    shared = None
    if mode == "holder":
        assert where is not None
        shared = Shared(HolderStore(where), kind="holder")
    elif mode == "redis":
        assert where is not None
        shared = Shared(RedisStore(where, prefix=f"bench{time.monotonic_ns()}:"), kind="redis")
    return Router(config, types={"instant": ProviderType("instant", InstantProvider)}, shared=shared)


def build(mode: str, where: str | None) -> tuple[App, str]:
    """The app for `mode`, with LIMITS on its provider and a key with LIMITS' rpm."""
    router = build_router(mode, where)
    accounting = Accounting.from_config(router)
    key, secret = make_key("bench", rpm=LIMITS["rpm"], tpm=LIMITS["tpm"], budget_usd=BUDGET_USD)
    accounting.keys.put(key)
    return App(router, accounting=accounting), secret


async def _call_with_key(app: App, secret: str) -> None:
    await post_chat(app, BODY, [(b"authorization", f"Bearer {secret}".encode())])


async def one_round(app: App, secret: str, requests: int, many: int, store_pid: int | None) -> dict[str, float]:
    await lifespan(app, "startup")

    for _ in range(200):  # warm up: connections, scripts loaded, buckets created
        await _call_with_key(app, secret)
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        await _call_with_key(app, secret)
        latencies.append(time.perf_counter() - started)
    store_cpu = cpu_seconds(store_pid) if store_pid else 0.0
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, many, 64):
        await asyncio.gather(*(_call_with_key(app, secret) for _ in range(min(64, many - i))))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    store_cpu = (cpu_seconds(store_pid) - store_cpu) if store_pid else 0.0
    await lifespan(app, "shutdown")
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "rps": many / elapsed,
        "cpu_us": cpu / many * 1e6,
        "store_cpu_us": store_cpu / many * 1e6,
    }


async def run_mode(mode: str, where: str | None, args: argparse.Namespace, store_pid: int | None) -> dict[str, float]:
    app, secret = build(mode, where)
    return await one_round(app, secret, args.requests, args.throughput_requests, store_pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000, help="sequential requests (c=1) per mode and round")
    parser.add_argument("--throughput-requests", type=int, default=20000, help="requests at c=64 per mode and round")
    parser.add_argument("--rpm", type=int, default=LIMITS["rpm"], help="the provider's and the key's rpm")
    parser.add_argument("--tpm", type=int, default=LIMITS["tpm"], help="the provider's and the key's tpm")
    parser.add_argument("--max-concurrency", type=int, default=LIMITS["max_concurrency"], help="the provider's")
    args = parser.parse_args()
    LIMITS.update(rpm=args.rpm, tpm=args.tpm, max_concurrency=args.max_concurrency)
    quiet_logs()
    results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with holder_process(folder) as (socket_path, holder_pid), redis_server(folder) as (url, redis_pid):
            places = {"memory": (None, None), "holder": (socket_path, holder_pid), "redis": (url, redis_pid)}
            for i in range(args.rounds):
                order = MODES if i % 2 == 0 else MODES[::-1]
                for mode in order:
                    where, pid = places[mode]
                    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                        result = asyncio.run(run_mode(mode, where, args, pid))
                    results[mode].append(result)
                    print(
                        f"round {i + 1} {mode:6}: p50 {result['p50_ms']:.3f} ms, {result['rps']:8,.0f} req/s at c=64, "
                        f"{result['cpu_us']:6.1f} us CPU a request (+{result['store_cpu_us']:.1f} in the store)",
                        flush=True,
                    )
    base_p50 = statistics.median(r["p50_ms"] for r in results["memory"])
    base_rps = statistics.median(r["rps"] for r in results["memory"])
    print("\n| mode | p50 at c=1 | added p50 | req/s at c=64 | vs memory | CPU a request | store CPU a request |")
    print("|---|---|---|---|---|---|---|")
    for mode in MODES:
        p50 = statistics.median(r["p50_ms"] for r in results[mode])
        rps = statistics.median(r["rps"] for r in results[mode])
        cpu = statistics.median(r["cpu_us"] for r in results[mode])
        store = statistics.median(r["store_cpu_us"] for r in results[mode])
        print(
            f"| {mode} | {p50:.3f} ms | {p50 - base_p50:+.3f} ms | {rps:,.0f} | {rps / base_rps - 1:+.1%} "
            f"| {cpu:.0f} us | {store:.0f} us |"
        )


if __name__ == "__main__":
    main()
