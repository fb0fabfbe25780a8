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
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .rollups import BATCH_COLUMNS, BATCH_TABLE, SQLITE, Dialect, batch_aggregate, rollup_statements
from .schema import MIGRATIONS, SCHEMA_TABLE, SQLITE_BODIES_INDEXED_UP_TO, Migration, check_not_newer
from .store import INSERT_REQUESTS_PREFIX, Row, Store

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
# Another process may be migrating (filling the usage rollups from every row: tens of
# seconds a million rows); a process starting meanwhile waits for it that long.
MIGRATION_BUSY_TIMEOUT_MS = 3_600_000
MAX_VARIABLES = 32_766  # SQLite's limit on ? parameters in one statement (since 3.32)
# Reports run on their own connections, each in its own thread: SQLite releases the GIL
# while it reads, so several reports proceed at once and none waits behind the writer.
READERS = 4
# Within BEGIN IMMEDIATE this writer is the only one, so the rows a batch added are those
# with an id above the largest before it: the rollups count only rows really inserted.
_AGGREGATE_BATCH = (
    f"INSERT INTO usage_batch ({', '.join(BATCH_COLUMNS)}) {batch_aggregate(SQLITE, 'requests', 'id > ?')}"
)
_ROLLUP_BATCH = rollup_statements(SQLITE, "usage_batch")


class _Connection:
    """sqlite3 connections, one per thread of a private executor (one thread: one connection)."""

    def __init__(self, path: str, name: str, threads: int = 1) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self._path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = _connect(self._path)
            with self._lock:
                self._opened.append(db)
        return fn(db)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for db in self._opened:
                db.close()
            self._opened.clear()


class Percentile:
    """`percentile(value, fraction)`: linear interpolation, as PostgreSQL's percentile_cont.
    Reports use the rollups' histograms; the console's live stats over recent rows use this."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        if value is not None:
            self.values.append(value)
        self.fraction = fraction

    def finalize(self) -> float | None:
        ordered = sorted(self.values)
        if not ordered:
            return None
        position = self.fraction * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _as_is(value: bytes | bool | None) -> bytes | bool | None:
    return value


# sqlite3 binds int, float and str directly but "adapts" every other value, None among them:
# two failed attribute lookups, each formatting an AttributeError, for each of the many NULLs
# of a batch of rows (a third of the ledger writer's time). A registered adapter is found
# first, and these bind as before.
for _kind in (type(None), bool, bytes):
    sqlite3.register_adapter(_kind, _as_is)


PAGE_SIZE = 16384


def _connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Taken only by a new ledger (an existing one keeps its pages): request bodies of a few
    # KB take a third less CPU to INSERT into 16 KB pages than into 4 KB ones, and their
    # index slightly less (bench/README.md, body logging).
    db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    _use_wal(db)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA temp_store = MEMORY")
    _ensure_math(db)
    db.create_aggregate("percentile", 2, Percentile)  # type: ignore[arg-type]
    db.execute(BATCH_TABLE)
    return db


def _ensure_math(db: sqlite3.Connection) -> None:
    """ln() and ceil() for the latency buckets, where SQLite was built without its math functions."""
    try:
        db.execute("SELECT ln(2.0), ceil(1.5)")
    except sqlite3.OperationalError:
        db.create_function("ln", 1, math.log, deterministic=True)
        db.create_function("ceil", 1, math.ceil, deterministic=True)


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
        self._reader = _Connection(str(self.path), "llmmux-ledger-read", threads=READERS)
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
                last_id = db.execute("SELECT COALESCE(MAX(id), 0) FROM requests").fetchone()[0]
                start = 0
                for count in chunk_sizes(len(rows), per_statement):
                    chunk = rows[start : start + count]
                    start += count
                    db.execute(_multi_insert(count, width), [v for row in chunk for v in row])
                db.execute("DELETE FROM usage_batch")
                db.execute(_AGGREGATE_BATCH, (last_id,))
                for statement in _ROLLUP_BATCH:
                    db.execute(statement)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._connection(False).call(run)

    async def fetch(self, sql: str, args: Row = ()) -> list[Row]:
        return await self._connection(True).call(lambda db: db.execute(sql, args).fetchall())

    async def transaction(self, steps: Sequence[tuple[str, Sequence[Row]]]) -> None:
        def run(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for sql, rows in steps:
                    db.executemany(sql, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._connection(False).call(run)

    def body_search(self, text: str) -> tuple[str, list[Any]]:
        """The FTS5 index, and a scan of the bodies not yet in it (the body log indexes apart from storing).

        Each word quoted: FTS5 syntax (AND, NEAR, *, column:) in a user's words is taken
        literally. The scan matches each word as a substring, ASCII case folded (LIKE), where
        the index matches whole words: a body not yet indexed may match a little more.
        """
        words = text.split()
        query = fts_query(words)
        indexed = (
            "SELECT b.request_id FROM request_bodies b JOIN request_bodies_fts f ON f.rowid = b.id "
            "WHERE request_bodies_fts MATCH ?"
        )
        if not words:
            return indexed, [query]
        each = " AND ".join(["(request LIKE ? ESCAPE '\\' OR response LIKE ? ESCAPE '\\')"] * len(words))
        tail = f"SELECT request_id FROM request_bodies WHERE id > ({SQLITE_BODIES_INDEXED_UP_TO}) AND {each}"
        likes = [_like(w) for w in words for _ in (0, 1)]
        return f"{indexed} UNION ALL {tail}", [query, *likes]

    def percentile(self, expression: str, fraction: float) -> str:
        return f"percentile({expression}, {fraction})"

    def day(self, expression: str) -> str:
        return SQLITE.day.format(ts=expression)

    @property
    def sql(self) -> Dialect:
        return SQLITE

    def contains(self, column: str, needle: str) -> str:
        return f"instr({column}, {needle}) > 0"

    def each_tag(self, column: str) -> str:
        return f"LEFT JOIN json_each(requests.{column}) AS t"


def fts_query(words: list[str]) -> str:
    """An FTS5 query for bodies holding every token of `words`, each token quoted (so FTS5's
    syntax in a user's words is taken literally) and on its own: the index has no positions,
    so "gpt-4o" asks for bodies with both "gpt" and "4o", as PostgreSQL's plainto_tsquery does.
    """
    tokens = [token for word in words for token in _tokens(word)]
    return " ".join(f'"{token}"' for token in tokens) or '""'


def _tokens(word: str) -> list[str]:
    """`word` split where FTS5's unicode61 splits: at every character but letters, numbers and
    private-use characters (a combining accent too, which FTS5 may fold into its letter)."""
    tokens, token = [], ""
    for c in word:
        if c.isalnum() if c.isascii() else _token_character(c):
            token += c
        elif token:
            tokens.append(token)
            token = ""
    return [*tokens, token] if token else tokens


def _token_character(c: str) -> bool:
    """Whether FTS5 surely keeps `c` in a token: a letter, number or private-use character in
    Unicode 3.2 and now (SQLite's tables are Unicode 6.1's). Counting a character it keeps as
    a separator only splits a query token; the other way round would make a phrase, which an
    index without positions refuses."""
    return all(category(c)[0] in "LN" or category(c) == "Co" for category in _CATEGORIES)


_CATEGORIES = (unicodedata.category, unicodedata.ucd_3_2_0.category)


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


INSERT_CHUNKS = (1024, 256, 64, 16, 4, 1)
"""The row counts one INSERT statement takes.

Every distinct statement stays compiled in the connection's statement cache (128 of them),
and one for hundreds of rows of some thirty columns holds about a megabyte: with a statement
per batch size, a worker's ledger connection kept 20 MB after a load run. Batches split into
these sizes reuse at most six statements.
"""


def chunk_sizes(rows: int, most: int) -> list[int]:
    """`rows` as a sum of INSERT_CHUNKS sizes no larger than `most`, largest first.

    >>> chunk_sizes(500, 1000)
    [256, 64, 64, 64, 16, 16, 16, 4]
    """
    sizes: list[int] = []
    for size in (s for s in INSERT_CHUNKS if s <= most or s == 1):
        count, rows = divmod(rows, size)
        sizes += [size] * count
    return sizes


@functools.lru_cache(maxsize=len(INSERT_CHUNKS))
def _multi_insert(count: int, width: int) -> str:
    values = "(" + ", ".join("?" * width) + ")"
    return INSERT_REQUESTS_PREFIX + ", ".join([values] * count) + " ON CONFLICT (request_id) DO NOTHING"


def _migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    # BEGIN IMMEDIATE takes the write lock first, so two workers starting together migrate once.
    db.execute(f"PRAGMA busy_timeout = {MIGRATION_BUSY_TIMEOUT_MS}")
    try:
        _migrate_locked(db, migrations)
    finally:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _migrate_locked(db: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
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
