"""The ledger in a SQLite file: WAL mode, one writer thread and one reader thread.

sqlite3 blocks, so each connection lives on its own single-thread executor and the
event loop only awaits it. With WAL, reports on the reader connection never hold up the
batched inserts, and several worker processes can share the file (busy_timeout covers
the moments two of them write at once).

`synchronous=NORMAL` is WAL's recommended setting: a committed batch survives the
process crashing; an operating-system crash or power cut may lose the last commits.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .schema import MIGRATIONS, SCHEMA_TABLE, Migration, check_not_newer
from .store import INSERT_REQUESTS_PREFIX, Row, Store

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
MAX_VARIABLES = 32_766  # SQLite's limit on ? parameters in one statement (since 3.32)


class Percentile:
    """`percentile(value, fraction)`: linear interpolation, as PostgreSQL's percentile_cont."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        if value is not None:
            self.values.append(value)
        self.fraction = fraction

    def finalize(self) -> float | None:
        return interpolate(sorted(self.values), self.fraction)


def interpolate(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _Connection:
    """A sqlite3 connection confined to one thread."""

    def __init__(self, path: str, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._path = path
        self._db: sqlite3.Connection | None = None

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            self._db = _connect(self._path)
        return fn(self._db)

    async def close(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self.call(shut)
        self._executor.shutdown(wait=True)


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    _use_wal(db)
    db.execute("PRAGMA synchronous = NORMAL")
    db.create_aggregate("percentile", 2, Percentile)  # type: ignore[arg-type]
    return db


def _use_wal(db: sqlite3.Connection) -> None:
    # Switching to WAL needs an exclusive lock and SQLite does not wait for it (no busy
    # handler), so workers opening a new ledger together retry instead of failing.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class SQLiteStore(Store):
    """`SQLiteStore("/var/lib/llmmux/llmmux.db")`; the file and its folder are created on open."""

    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None

    @property
    def location(self) -> str:
        return str(self.path)

    async def open(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _Connection(str(self.path), "llmmux-ledger-write")
        self._reader = _Connection(str(self.path), "llmmux-ledger-read")
        await self._writer.call(lambda db: _migrate(db, migrations))

    async def close(self) -> None:
        for connection in (self._writer, self._reader):
            if connection is not None:
                await connection.close()
        self._writer = self._reader = None

    def _connection(self, reader: bool) -> _Connection:
        connection = self._reader if reader else self._writer
        if connection is None:
            raise RuntimeError("the ledger is not open")
        return connection

    async def execute(self, sql: str, args: Row = ()) -> None:
        await self._connection(False).call(lambda db: db.execute(sql, args))

    async def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._connection(False).call(run)

    async def insert_requests(self, rows: Sequence[Row]) -> None:
        """One multi-row INSERT per chunk rather than `executemany`.

        The sqlite3 module releases the GIL around every statement step; executemany steps
        once per row, and each hand-back of the GIL stalls the event loop thread. One
        statement per chunk steps once, so the writer thread barely competes with requests.
        """
        if not rows:
            return
        width = len(rows[0])
        per_statement = max(1, MAX_VARIABLES // width)

        def run(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(rows), per_statement):
                    chunk = rows[start : start + per_statement]
                    db.execute(_multi_insert(len(chunk), width), [v for row in chunk for v in row])
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._connection(False).call(run)

    async def fetch(self, sql: str, args: Row = ()) -> list[Row]:
        return await self._connection(True).call(lambda db: db.execute(sql, args).fetchall())

    def percentile(self, expression: str, fraction: float) -> str:
        return f"percentile({expression}, {fraction})"

    def day(self, expression: str) -> str:
        return f"strftime('%Y-%m-%d', {expression}, 'unixepoch')"

    def contains(self, column: str, needle: str) -> str:
        return f"instr({column}, {needle}) > 0"

    def each_tag(self, column: str) -> str:
        return f"LEFT JOIN json_each(requests.{column}) AS t"


@functools.lru_cache(maxsize=64)
def _multi_insert(count: int, width: int) -> str:
    values = "(" + ", ".join("?" * width) + ")"
    return INSERT_REQUESTS_PREFIX + ", ".join([values] * count) + " ON CONFLICT (request_id) DO NOTHING"


def _migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    # BEGIN IMMEDIATE takes the write lock first, so two workers starting together migrate once.
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(SCHEMA_TABLE.format(real="REAL"))
        current = db.execute("SELECT MAX(version) FROM llmmux_schema").fetchone()[0] or 0
        check_not_newer(current, migrations)
        for migration in migrations:
            if migration.version > current:
                for statement in migration.statements("sqlite"):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO llmmux_schema (version, description, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.description, time.time()),
                )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
