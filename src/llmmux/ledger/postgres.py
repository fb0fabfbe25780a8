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

from .schema import MIGRATIONS, SCHEMA_TABLE, Migration, check_not_newer
from .store import Row, Store

POOL_MAX = 4
CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 60.0
# Any constant: the advisory lock that makes concurrent starts migrate one at a time.
MIGRATION_LOCK = 0x6C6C6D6D7578
_PLACEHOLDER = re.compile(r"\?")


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
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(SCHEMA_TABLE.format(real="DOUBLE PRECISION"))
            current = await conn.fetchval("SELECT MAX(version) FROM llmmux_schema") or 0
            check_not_newer(current, migrations)
            for migration in migrations:
                if migration.version > current:
                    for statement in migration.statements("postgres"):
                        await conn.execute(statement)
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

    async def fetch(self, sql: str, args: Row = ()) -> list[Row]:
        records = await self._require().fetch(self._numbered(sql), *args)
        return [tuple(r) for r in records]

    def percentile(self, expression: str, fraction: float) -> str:
        return f"percentile_cont({fraction}) WITHIN GROUP (ORDER BY {expression})"

    def day(self, expression: str) -> str:
        return f"to_char(to_timestamp({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def contains(self, column: str, needle: str) -> str:
        return f"strpos({column}, {needle}) > 0"

    def each_tag(self, column: str) -> str:
        return f"LEFT JOIN LATERAL jsonb_array_elements_text(requests.{column}::jsonb) AS t(value) ON TRUE"
