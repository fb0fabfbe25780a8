"""asyncpg or psycopg 3 for the PostgreSQL ledger: the gateway process's CPU per written row.

The ledger writes from the gateway's own event loop, so the driver's CPU per row is taken
from request handling. Each driver writes the same batches (500 rows of 25 columns, one
transaction each, `executemany` with ON CONFLICT as the ledger does) into a throwaway
cluster, and the process CPU time is divided by the rows written.

    pip install asyncpg 'psycopg[binary]'
    python bench/ledger_drivers.py                   # needs PostgreSQL's initdb/pg_ctl (Debian: postgresql)

Measured when the driver was chosen: asyncpg 3.1 to 4.3 us a row, psycopg 14.0 to 16.4 us
a row; both near 27,000 rows/s of wall time.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.postgres import TempPostgres

COLUMNS = [f"c{i}" for i in range(24)]
DDL = (
    "CREATE TABLE t (id bigserial PRIMARY KEY, rid text UNIQUE, "
    + ", ".join(f"{c} double precision" for c in COLUMNS)
    + ")"
)
BATCHES, BATCH = 40, 500


def rows(start: int) -> list[tuple[Any, ...]]:
    return [(f"r{start + i}", *[float(i)] * len(COLUMNS)) for i in range(BATCH)]


def insert(placeholders: list[str]) -> str:
    return f"INSERT INTO t (rid, {', '.join(COLUMNS)}) VALUES ({', '.join(placeholders)}) ON CONFLICT (rid) DO NOTHING"


async def with_asyncpg(url: str) -> float:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url)
    await conn.execute(DDL)
    sql = insert([f"${i + 1}" for i in range(len(COLUMNS) + 1)])
    cpu = time.process_time()
    for b in range(BATCHES):
        async with conn.transaction():
            await conn.executemany(sql, rows(b * BATCH))
    used = time.process_time() - cpu
    await conn.close()
    return used


async def with_psycopg(url: str) -> float:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url)
    await conn.execute(DDL)
    await conn.commit()
    sql = insert(["%s"] * (len(COLUMNS) + 1))
    cpu = time.process_time()
    for b in range(BATCHES):
        async with conn.cursor() as cursor:
            await cursor.executemany(sql, rows(b * BATCH))
        await conn.commit()
    used = time.process_time() - cpu
    await conn.close()
    return used


def main() -> None:
    with TempPostgres() as server:
        for _ in range(2):
            for name, run in (("asyncpg", with_asyncpg), ("psycopg", with_psycopg)):
                url = server.create_database("d" + uuid.uuid4().hex[:10])
                used = asyncio.run(run(url))
                print(f"{name}: {used / (BATCHES * BATCH) * 1e6:.1f} us of CPU a row")


if __name__ == "__main__":
    main()
