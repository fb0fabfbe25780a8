"""`GET /admin/usage` over a large ledger, on SQLite and on a throwaway PostgreSQL.

Writes N generated request rows (default 1,000,000 over the last 30 days: 40 virtual keys
and requests without one, 12 public models on 5 providers, 3% errors, log-normal
latencies) through the store's own insert path, starts `llmmux serve` on that ledger and
times the report for each grouping, one at a time and 8 at once.

    PYTHONPATH=src .venv/bin/python bench/usage_reports.py                 # both engines
    PYTHONPATH=src .venv/bin/python bench/usage_reports.py --rows 200000 --engine sqlite

Requires PostgreSQL's initdb/pg_ctl (Debian: postgresql) for the PostgreSQL half.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from llmmux.ledger import PostgresStore, SQLiteStore, Store
from support.gateway import free_port
from support.postgres import TempPostgres
from support.serve import start_serve, stop_serve, wait_healthy

MASTER = "sk-bench-usage"
DAY = 86400.0
BATCH = 5000
GROUPINGS = ("key", "model", "day", "provider", "upstream")
REPEATS = 3
CONCURRENT = 8
MODELS = [(f"model-{i:02d}", f"provider-{i % 5}", f"upstream-{i:02d}") for i in range(12)]
CONFIG = """
server: {{master_key: {master}}}
ledger: {{{ledger}}}
providers:
  up: {{type: openai_compatible, base_url: "http://127.0.0.1:9/v1", models: [m]}}
"""


def generate(count: int, now: float, seed: int = 7) -> list[tuple[Any, ...]]:
    """`count` rows in time order over the 30 days before `now`, in schema.REQUEST_COLUMNS order."""
    rnd = random.Random(seed)
    keys: list[str | None] = [f"key-{i:02d}" for i in range(40)] + [None] * 4
    # Each key favours a few models, as teams do.
    favourites = {k: rnd.sample(range(len(MODELS)), 3) for k in keys}
    stamps = sorted(now - 30 * DAY + rnd.random() * 30 * DAY for _ in range(count))
    rows = []
    for i, ts in enumerate(stamps):
        key = rnd.choice(keys)
        public, provider, model = MODELS[rnd.choice(favourites[key])]
        failed = rnd.random() < 0.03
        prompt, completion = rnd.randint(50, 4000), rnd.randint(10, 1000)
        latency = rnd.lognormvariate(math.log(800), 0.6)
        rows.append(
            (
                f"req-{i:08d}",
                ts,
                key,
                "openai",
                public,
                provider,
                model,
                rnd.random() < 0.5,
                1,
                0,
                0,
                0 if failed else prompt,
                0 if failed else completion,
                0,
                0,
                0,
                0 if failed else prompt + completion,
                rnd.random() < 0.02,
                0.0 if failed else (prompt * 2.5 + completion * 10) / 1e6,
                round(latency, 3),
                round(latency / 4, 3),
                round(latency * 0.95, 3),
                502 if failed else 200,
                "upstream_error" if failed else None,
                None,
            )
        )
    return rows


async def fill(store: Store, rows: list[tuple[Any, ...]]) -> float:
    await store.open()
    started = time.perf_counter()
    try:
        for start in range(0, len(rows), BATCH):
            await store.insert_requests(rows[start : start + BATCH])
    finally:
        await store.close()
    return time.perf_counter() - started


def timed_get(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    reply = client.get(path, headers={"Authorization": f"Bearer {MASTER}"}, timeout=300)
    elapsed = time.perf_counter() - started
    assert reply.status_code == 200, reply.text
    return elapsed


def measure(port: int, since: str, repeats: int) -> list[str]:
    lines = []
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base) as client, ThreadPoolExecutor(CONCURRENT) as pool:
        for by in GROUPINGS:
            path = f"/admin/usage?since={since}&by={by}"
            single = statistics.median(timed_get(client, path) for _ in range(repeats))
            started = time.perf_counter()
            list(pool.map(functools.partial(timed_get, client), [path] * CONCURRENT))
            together = time.perf_counter() - started
            lines.append(f"| {since} | {by} | {single * 1000:.0f} ms | {together * 1000:.0f} ms |")
            print(lines[-1], flush=True)
    return lines


def run_engine(engine: str, rows: list[tuple[Any, ...]], folder: Path, pg: TempPostgres | None, repeats: int) -> None:
    if engine == "sqlite":
        path = folder / "ledger.db"
        store: Store = SQLiteStore(path)
        ledger = f"path: {path}"
    else:
        assert pg is not None
        url = pg.create_database("bench_usage")
        store = PostgresStore(url)
        ledger = f'database_url: "{url}"'
    written = asyncio.run(fill(store, rows))
    print(f"\n{engine}: {len(rows):,} rows written in {written:.1f} s ({len(rows) / written:,.0f} rows/s)", flush=True)
    config = folder / f"{engine}.yaml"
    config.write_text(CONFIG.format(master=MASTER, ledger=ledger))
    port = free_port()
    process = start_serve(config, port, env={"LLMMUX_LOG_LEVEL": "warning"}, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, process, limit=600)
        print("| since | by | one report | 8 at once (all answered) |\n|---|---|---|---|", flush=True)
        for since in ("30d", "7d"):
            measure(port, since, repeats)
    finally:
        stop_serve(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="single reports per grouping (median)")
    args = parser.parse_args()
    rows = generate(args.rows, time.time())
    with tempfile.TemporaryDirectory(prefix="llmmux-bench-usage-") as name:
        folder = Path(name)
        if args.engine in ("sqlite", "both"):
            run_engine("sqlite", rows, folder, None, args.repeats)
        if args.engine in ("postgres", "both"):
            with TempPostgres() as pg:
                run_engine("postgres", rows, folder, pg, args.repeats)


if __name__ == "__main__":
    main()
