"""The cache in a SQLite file: entries survive a restart, and processes on one host share them.

One connection on its own thread (sqlite3 blocks); WAL lets worker processes read while one
writes. Expired rows are skipped on read and swept now and then on write.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from .store import StoreStats

T = TypeVar("T")
SWEEP_EVERY = 256  # writes between sweeps of expired rows
BUSY_TIMEOUT_MS = 5_000
_SCHEMA = """CREATE TABLE IF NOT EXISTS cache_entries (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    public TEXT NOT NULL,
    namespace TEXT NOT NULL,
    expires REAL NOT NULL,
    written REAL NOT NULL,
    semantic INTEGER NOT NULL
)"""
_INDEXES = ("CREATE INDEX IF NOT EXISTS cache_written ON cache_entries (semantic, written)",)


class SQLiteStore:
    """`SQLiteStore("llmmux-cache.db")`: the cache on disk."""

    kind = "sqlite"

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmmux-cache")
        self._db: sqlite3.Connection | None = None
        self._writes = 0

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            for index in _INDEXES:
                db.execute(index)
            self._db = db
        return fn(self._db)

    async def get(self, key: str) -> bytes | None:
        now = self._clock()

        def read(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT data FROM cache_entries WHERE key = ? AND expires > ?", (key, now)).fetchone()
            return bytes(row[0]) if row else None

        return await self._call(read)

    async def put(self, key: str, data: bytes, ttl_s: float, public: str, namespace: str) -> None:
        now = self._clock()
        self._writes += 1
        sweep = self._writes % SWEEP_EVERY == 0

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO cache_entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, data, public, namespace, now + ttl_s, now, key.startswith("s:")),
            )
            if sweep:
                db.execute("DELETE FROM cache_entries WHERE expires <= ?", (now,))

        await self._call(write)

    async def clear(self, public: str | None = None, namespace: str | None = None) -> int:
        where, args = _filter(public, namespace)

        def delete(db: sqlite3.Connection) -> int:
            return db.execute(f"DELETE FROM cache_entries{where}", args).rowcount

        return await self._call(delete)

    async def stats(self) -> StoreStats:
        now = self._clock()

        def count(db: sqlite3.Connection) -> tuple[int, int]:
            row = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM cache_entries WHERE expires > ?", (now,)
            ).fetchone()
            return int(row[0]), int(row[1])

        entries, size = await self._call(count)
        return StoreStats(entries, size, self.kind)

    async def semantic(self, since: float) -> list[tuple[str, bytes]]:
        now = self._clock()

        def read(db: sqlite3.Connection) -> list[tuple[str, bytes]]:
            rows = db.execute(
                "SELECT key, data FROM cache_entries WHERE semantic = 1 AND written >= ? AND expires > ?", (since, now)
            ).fetchall()
            return [(str(k), bytes(d)) for k, d in rows]

        return await self._call(read)

    async def aclose(self) -> None:
        def shut(db: sqlite3.Connection) -> None:
            db.close()
            self._db = None

        if self._db is not None:
            await self._call(shut)
        self._executor.shutdown(wait=True)


def _filter(public: str | None, namespace: str | None) -> tuple[str, tuple[str, ...]]:
    clauses, args = [], []
    if public is not None:
        clauses.append("public = ?")
        args.append(public)
    if namespace is not None:
        clauses.append("namespace = ?")
        args.append(namespace)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(args)
