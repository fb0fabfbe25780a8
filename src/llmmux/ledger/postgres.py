"""The ledger in PostgreSQL, over asyncpg.

asyncpg rather than psycopg 3: measured on this gateway's batched insert (500-row
`executemany` batches, 25 columns), asyncpg used 3 to 4 µs of the gateway process's CPU
per row against psycopg's 14 to 16 µs, and the ledger shares that CPU with request
handling (bench/ledger_drivers.py repeats the measurement). Both were as fast in wall
time; the gateway never needs a sync driver, since the CLI runs the same async store.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .rollups import POSTGRES, Dialect, batch_aggregate, one_statement, rollup_statements
from .schema import MIGRATIONS, REQUEST_COLUMNS, SCHEMA_TABLE, Migration, check_not_newer
from .store import Row, Store

POOL_MAX = 4
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 60.0
# A migration may fill new tables from every row already there (the usage rollups: tens of
# seconds a million rows), and instances starting meanwhile wait on its lock that long.
MIGRATION_TIMEOUT_S = 3600.0
# Any constant: the advisory lock that makes concurrent starts migrate one at a time.
MIGRATION_LOCK = 0x6C6C6D6D7578
_PLACEHOLDER = re.compile(r"\?")
# The PostgreSQL type of each request column, for passing a batch as one array per column.
_COLUMN_TYPES = {
    "ts": "float8",
    "stream": "bool",
    "estimated": "bool",
    "cost_usd": "float8",
    "latency_ms": "float8",
    "ttft_ms": "float8",
    "upstream_ms": "float8",
    "saved_usd": "float8",
    **dict.fromkeys(
        (
            "attempts",
            "fallbacks",
            "retries",
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "total_tokens",
            "status",
        ),
        "int8",
    ),
}


def _insert_batch() -> str:
    """One statement for a batch: insert the rows (a retried batch's are skipped), then add
    exactly the inserted ones to both rollups. One round trip, one snapshot."""
    arrays = ", ".join(f"${i}::{_COLUMN_TYPES.get(c, 'text')}[]" for i, c in enumerate(REQUEST_COLUMNS, 1))
    columns = ", ".join(REQUEST_COLUMNS)
    inserted = (
        f"inserted AS (INSERT INTO requests ({columns}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (request_id) DO NOTHING RETURNING {columns})"
    )
    aggregate = batch_aggregate(POSTGRES, "inserted", "1 = 1")
    return one_statement(aggregate, rollup_statements(POSTGRES, "batch"), prefix=inserted)


INSERT_BATCH = _insert_batch()


def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...` (the ledger's SQL has no literal '?')."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def redact(url: str) -> str:
    """The URL with its password replaced, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":****@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(Store):
    """`PostgresStore("postgresql://llmmux:secret@db:5432/llmmux")`; the tables are created on open."""

    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self._url = url
        self._pool: Any = None
        self._sql: dict[str, str] = {}

    @property
    def location(self) -> str:
        return redact(self._url)

    async def open(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        import asyncpg  # type: ignore[import-untyped]  # imported only where PostgreSQL is used

        self._pool = await asyncpg.create_pool(
            self._url, min_size=1, max_size=POOL_MAX, timeout=CONNECT_TIMEOUT_S, command_timeout=COMMAND_TIMEOUT_S
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK, timeout=MIGRATION_TIMEOUT_S)
            await conn.execute(SCHEMA_TABLE.format(real="DOUBLE PRECISION"))
            current = await conn.fetchval("SELECT MAX(version) FROM llmmux_schema") or 0
            check_not_newer(current, migrations)
            for migration in migrations:
                if migration.version > current:
                    for statement in migration.statements("postgres"):
                        await conn.execute(statement, timeout=MIGRATION_TIMEOUT_S)
                    await conn.execute(
                        "INSERT INTO llmmux_schema (version, description, applied_at) VALUES ($1, $2, $3)",
                        migration.version,
                        migration.description,
                        time.time(),
                    )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _numbered(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = numbered(sql)
        return found

    def _require(self) -> Any:
        if self._pool is None:
            raise RuntimeError("the ledger is not open")
        return self._pool

    async def execute(self, sql: str, args: Row = ()) -> None:
        await self._require().execute(self._numbered(sql), *args)

    async def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        async with self._require().acquire() as conn, conn.transaction():
            await conn.executemany(self._numbered(sql), rows)

    async def insert_requests(self, rows: Sequence[Row]) -> None:
        if rows:
            await self._require().execute(INSERT_BATCH, *(list(column) for column in zip(*rows, strict=True)))

    async def transaction(self, steps: Sequence[tuple[str, Sequence[Row]]]) -> None:
        async with self._require().acquire() as conn, conn.transaction():
            for sql, rows in steps:
                await conn.executemany(self._numbered(sql), rows)

    def percentile(self, expression: str, fraction: float) -> str:
        return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {expression})"

    def body_search(self, text: str) -> tuple[str, list[Any]]:
        return "SELECT request_id FROM request_bodies WHERE search @@ plainto_tsquery('simple', ?)", [text]

    async def fetch(self, sql: str, args: Row = ()) -> list[Row]:
        records = await self._require().fetch(self._numbered(sql), *args)
        return [tuple(r) for r in records]

    def day(self, expression: str) -> str:
        return POSTGRES.day.format(ts=expression)

    @property
    def sql(self) -> Dialect:
        return POSTGRES

    def contains(self, column: str, needle: str) -> str:
        return f"strpos({column}, {needle}) > 0"

    def each_tag(self, column: str) -> str:
        return f"LEFT JOIN LATERAL jsonb_array_elements_text(requests.{column}::jsonb) AS t(value) ON TRUE"
