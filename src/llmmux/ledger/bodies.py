"""Prompts and replies kept beside the ledger, for the console's search and request view.

Only the public models `logging.bodies` names are kept. A finished request costs the hot
path nothing here: the accounting's batch loop hands records to `BodyLog.add`, which keeps
only the bytes already in hand, cut to the size limit (`body_rows.body_item`), in a queue
bounded by count and bytes (past either, a body is dropped and counted, never waited for).
A background task takes the queue every `FLUSH_INTERVAL_S`, redacts and cuts it into rows
on the body log's own thread (one masker search over the ASCII bodies of 64 requests at
once, and a redaction only of those holding a credential word or known secret:
`body_rows.item_rows`), writes them in one multi-row INSERT on the ledger's writer
connection (so SQLite's readers stay free for the console), and enforces retention by age
and total size every `RETENTION_INTERVAL_S`.

SQLite's full-text index adds about half again to what redacting and storing a body cost (see
bench/README.md), so it is built apart from the INSERT, in slices (`index_plan`): while the
gateway is quiet, up to `INDEX_SLICE` bodies a tick; while it is busy, only what exceeds
`MAX_UNINDEXED`, so a burst's indexing waits for a quieter moment instead of taking CPU
from requests. Search covers the bodies not yet indexed by scanning them (the store's
`body_search`), so it finds every stored body either way. PostgreSQL indexes each row as
it is inserted (a generated tsvector column), in its own server's CPU.

    bodies = BodyLog(store, config.logging.body_store, masker)
    await bodies.start(); bodies.add(record); await bodies.aclose()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from ..config.model import BodyStoreConfig
from ..events import RequestRecord
from ..logs import Redactor
from ..masking import Masker
from ..tasks import cancel_and_wait
from .body_rows import HeaderPieces, Item, body_item, item_rows, joinable
from .schema import SQLITE_BODIES_INDEXED_UP_TO
from .sqlite import INSERT_CHUNKS, MAX_VARIABLES, chunk_sizes
from .store import Row, Store

log = logging.getLogger("llmmux.ledger")

FLUSH_INTERVAL_S = 1.0
RETENTION_INTERVAL_S = 60.0
MAX_PENDING = 10_000
MAX_PENDING_BYTES = 64 * 1024**2  # bodies queued but not yet written; a stalled database holds no more
# SQLite's full-text index, built apart from the INSERT (see the module's docstring):
QUIET_ROWS = 100  # bodies stored in a tick (all workers) at or under which the gateway counts as quiet
INDEX_SLICE = 2_000  # bodies indexed a tick while quiet: some 50 ms of the writer thread
MAX_UNINDEXED = 20_000  # while busy, the most left to search's scan (some 30 MB: tens of ms a search)
ROWS_THREAD = "llmmux-bodies"
_COLUMNS = ("request_id", "ts", "headers", "request", "response", "bytes")
_INSERT = (
    f"INSERT INTO request_bodies ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_SQLITE_PROGRESS = f"SELECT COALESCE(MAX(id), 0), ({SQLITE_BODIES_INDEXED_UP_TO}) FROM request_bodies"
# Every worker reads the mark of what is indexed inside its write transaction, so no body is
# indexed twice however many index at once.
_SQLITE_INDEX = (
    "INSERT INTO request_bodies_fts (rowid, request, response) "
    f"SELECT id, request, response FROM request_bodies WHERE id > ({SQLITE_BODIES_INDEXED_UP_TO}) ORDER BY id LIMIT ?"
)
# Then, in the same transaction, the mark past the bodies that statement took.
_SQLITE_INDEXED = (
    "UPDATE request_bodies_indexed SET up_to = COALESCE((SELECT MAX(id) FROM "
    "(SELECT id FROM request_bodies WHERE id > up_to ORDER BY id LIMIT ?)), up_to)"
)
# FTS5 with external content forgets a row only when told its old text (hence the SELECT),
# and must not be told to forget one it never indexed.
_SQLITE_FORGET = (
    "INSERT INTO request_bodies_fts (request_bodies_fts, rowid, request, response) "
    f"SELECT 'delete', id, request, response FROM request_bodies WHERE id < ? AND id <= ({SQLITE_BODIES_INDEXED_UP_TO})"
)
_DELETE = "DELETE FROM request_bodies WHERE id < ?"
# SQLite gives an emptied table's next row id 1 again: the mark goes back with the rows.
_SQLITE_UNMARK = (
    "UPDATE request_bodies_indexed SET up_to = MIN(up_to, (SELECT COALESCE(MAX(id), 0) FROM request_bodies))"
)
_OLDEST_KEPT_BY_AGE = "SELECT MIN(id) FROM request_bodies WHERE ts >= ?"
# The size of the stored bodies, counted a range of ids at a time (`StoredBytes`).
_FIRST_ID = "SELECT MIN(id) FROM request_bodies"
_BYTES_FROM = "SELECT COALESCE(SUM(bytes), 0), MAX(id) FROM request_bodies WHERE id >= ?"
_BYTES_BETWEEN = "SELECT COALESCE(SUM(bytes), 0) FROM request_bodies WHERE id >= ? AND id <= ?"
_OLDEST = "SELECT id, bytes FROM request_bodies WHERE id >= ? ORDER BY id LIMIT ?"
OLDEST_CHUNK = 1_000
_SELECT_ONE = "SELECT headers, request, response, bytes FROM request_bodies WHERE request_id = ?"


def _name_os_thread() -> None:
    """The thread's name where `top -H` and the benchmark see it (Python names only its own object)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(ROWS_THREAD)


def _sqlite_steps(batch: list[Row]) -> list[tuple[str, list[Row]]]:
    """The batch as multi-row INSERTs of the ledger's fixed chunk sizes, not a statement per row.

    sqlite3 hands the GIL back at every statement step; a step per row would stall the
    event loop thread once per row (see SQLiteStore.insert_requests). Fixed sizes keep the
    connection's statement cache to a few compiled INSERTs instead of one per batch size.
    """
    steps: list[tuple[str, list[Row]]] = []
    start = 0
    for count in chunk_sizes(len(batch), MAX_VARIABLES // len(_COLUMNS)):
        chunk = batch[start : start + count]
        start += count
        steps.append((_sqlite_insert(count), [tuple(v for row in chunk for v in row)]))
    return steps


@functools.lru_cache(maxsize=len(INSERT_CHUNKS))
def _sqlite_insert(rows: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * len(_COLUMNS)) + ")"] * rows)
    return f"INSERT INTO request_bodies ({', '.join(_COLUMNS)}) VALUES {values} ON CONFLICT (request_id) DO NOTHING"


def index_plan(unindexed: int, arrived: int) -> int:
    """How many bodies to index this tick, given how many wait and how many arrived since the last.

    Quiet (few arrived): a slice of the backlog. Busy: only what exceeds `MAX_UNINDEXED`, so a
    burst costs requests no indexing while search's scan of the rest stays bounded.
    """
    if arrived <= QUIET_ROWS:
        return min(unindexed, INDEX_SLICE)
    return max(0, unindexed - MAX_UNINDEXED)


class StoredBytes:
    """The bytes the body table holds, kept as counts of id ranges, so that retention's
    size check each minute reads only the bodies stored since the last (every worker's)
    instead of the whole table.

    A range that retention (of any worker) has cut into is counted again; the newest range
    is counted once more a minute later, for PostgreSQL rows whose ids committed out of order.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ranges: list[tuple[int, int, int]] = []  # (first id, last id, bytes), oldest first

    async def total(self) -> int:
        first = (await self.store.fetch(_FIRST_ID))[0][0]
        if first is None:
            self.ranges = []
            return 0
        kept: list[tuple[int, int, int]] = []
        for low, high, size in self.ranges:
            if high >= first:
                kept.append((low, high, size) if low >= first else await self._range(int(first), high))
        start = int(first)
        if kept:
            low, high, _ = kept.pop()
            kept.append(await self._range(low, high))
            start = high + 1
        size, last = (await self.store.fetch(_BYTES_FROM, (start,)))[0]
        if last is not None:
            kept.append((start, int(last), int(size)))
        self.ranges = kept
        return sum(size for _, _, size in kept)

    async def _range(self, low: int, high: int) -> tuple[int, int, int]:
        return (low, high, int((await self.store.fetch(_BYTES_BETWEEN, (low, high)))[0][0]))


class BodyLog:
    """Queues bodies, redacts them, writes them in batches, indexes them and enforces retention, in one task."""

    def __init__(
        self,
        store: Store,
        config: BodyStoreConfig,
        masker: Masker,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        retention_interval_s: float = RETENTION_INTERVAL_S,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.masker = masker
        self.flush_interval_s = flush_interval_s
        self.retention_interval_s = retention_interval_s
        self.clock = clock
        self.dropped = 0
        self.unindexed = 0  # as of the last tick, all workers' (SQLite)
        self._pending: list[Item] = []
        self._pending_bytes = 0
        self._unwritten: list[Row] = []  # rows a failed write gives back, tried again first
        self._task: asyncio.Task[None] | None = None
        self._last_retention = 0.0
        self._last_stored: int | None = None  # the newest body's id at the last tick
        self.stored_bytes = StoredBytes(store)
        self._headers = HeaderPieces()  # pieces redacted by the masker holding `_headers_secrets`
        self._headers_secrets: tuple[str, ...] = ()
        self._rows_thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=ROWS_THREAD, initializer=_name_os_thread
        )

    def add(self, record: RequestRecord) -> None:
        """Queue a finished request's bodies: the bytes already in hand, cut to the limit."""
        if len(self._pending) >= MAX_PENDING or self._pending_bytes >= MAX_PENDING_BYTES:
            self.dropped += 1  # the database is behind: bodies are the first thing to give up
            return
        item = body_item(record, self.config.max_bytes)
        self._pending.append(item)
        self._pending_bytes += len(item[3]) + len(item[4])

    async def _rows(self, items: list[Item]) -> list[Row]:
        """Redacted and cut on this log's thread: the masker's secrets and the patterns as they are now."""
        redact = Redactor(self.masker.scrub, self.config.redact)
        loop = asyncio.get_running_loop()
        patterns = self.config.redact
        # With extra rules every text is redacted (a rule may match anywhere); with the masker
        # alone only the texts holding one of its words are (`item_rows`).
        word_starts = None if patterns else self.masker.ascii_word_starts
        if self._headers.redact is None or self._headers_secrets is not self.masker.secrets:
            self._headers, self._headers_secrets = HeaderPieces(self.masker.scrub), self.masker.secrets
        rows = functools.partial(item_rows, together=joinable(patterns), word_starts=word_starts, headers=self._headers)
        return await loop.run_in_executor(self._rows_thread, rows, items, redact, self.config.max_bytes)

    def _steps(self, batch: list[Row]) -> list[tuple[str, list[Row]]]:
        return _sqlite_steps(batch) if self.store.dialect == "sqlite" else [(_INSERT, batch)]

    def state(self) -> dict[str, Any]:
        """What the body log holds back and has given up, for `/admin/stats` (this worker's)."""
        return {
            "queued": len(self._pending) + len(self._unwritten),
            "queued_bytes": self._pending_bytes,
            "dropped": self.dropped,
            "unindexed": self.unindexed,
        }

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="llmmux-body-log")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
                await self.index()
                if self.clock() - self._last_retention >= self.retention_interval_s:
                    await self.enforce_retention()
            except Exception as exc:
                buffered = len(self._pending) + len(self._unwritten)
                log.error("body log write to %s failed (%d buffered): %s", self.store.location, buffered, exc)

    async def flush(self) -> None:
        items, self._pending, self._pending_bytes = self._pending, [], 0
        batch, self._unwritten = self._unwritten, []
        if items:
            try:
                batch += await self._rows(items)
            except BaseException:  # cancelled (the server is stopping): the last flush takes them
                self._pending[:0], self._unwritten = items, batch
                raise
        if not batch:
            return
        try:
            # Flattening a batch into statements' values is a Python loop over every value:
            # on the body log's thread, not between requests on the event loop.
            steps = await asyncio.get_running_loop().run_in_executor(self._rows_thread, self._steps, batch)
            await self.store.transaction(steps)
        except BaseException:
            self._unwritten = batch[:MAX_PENDING]
            self.dropped += len(batch) - len(self._unwritten)
            raise

    async def index(self, *, everything: bool = False) -> int:
        """Add this tick's share of stored bodies to SQLite's full-text index (`index_plan`); how many.

        `everything`: the whole backlog now, slice by slice, whatever the load.
        """
        if self.store.dialect != "sqlite":
            return 0
        stored, indexed = (int(v) for v in (await self.store.fetch(_SQLITE_PROGRESS))[0])
        arrived = stored - self._last_stored if self._last_stored is not None else stored - indexed
        self._last_stored = stored
        self.unindexed = max(0, stored - indexed)
        count = self.unindexed if everything else index_plan(self.unindexed, arrived)
        done = 0
        while done < count:
            step = min(INDEX_SLICE, count - done)
            await self.store.transaction([(_SQLITE_INDEX, [(step,)]), (_SQLITE_INDEXED, [(step,)])])
            done += step
        self.unindexed = max(0, self.unindexed - done)
        return done

    async def enforce_retention(self) -> int:
        """Delete bodies older than `max_age_s`, then the oldest until the rest fit `max_total_bytes`."""
        self._last_retention = self.clock()
        by_age = (await self.store.fetch(_OLDEST_KEPT_BY_AGE, (self.clock() - self.config.max_age_s,)))[0][0]
        if by_age is None:  # nothing young enough
            kept_from = await self._next_id()
        else:
            excess = await self.stored_bytes.total() - self.config.max_total_bytes
            kept_from = max(int(by_age), await self._oldest_kept_by_size(excess))
        steps: list[tuple[str, list[Row]]] = [(_DELETE, [(kept_from,)])]
        if self.store.dialect == "sqlite":
            steps = [(_SQLITE_FORGET, [(kept_from,)]), *steps, (_SQLITE_UNMARK, [()])]
        before = await self.count()
        await self.store.transaction(steps)
        return before - await self.count()

    async def _oldest_kept_by_size(self, excess: int, *, recount: bool = True) -> int:
        """The first id to keep so that the bodies before it hold at least `excess` bytes.

        Only the bodies that go are read, oldest first, in chunks.
        """
        if excess <= 0:
            return 0
        start, removed = 0, 0
        while True:
            rows = await self.store.fetch(_OLDEST, (start, OLDEST_CHUNK))
            for id_, size in rows:
                removed += int(size)
                if removed >= excess:
                    return int(id_) + 1
            if len(rows) < OLDEST_CHUNK:  # fewer bytes than counted (another worker removed some): all there is
                return (
                    await self._oldest_kept_by_size(removed - self.config.max_total_bytes, recount=False)
                    if recount
                    else 0
                )
            start = int(rows[-1][0]) + 1

    async def _next_id(self) -> int:
        rows = await self.store.fetch("SELECT MAX(id) FROM request_bodies")
        return int(rows[0][0] or 0) + 1

    async def count(self) -> int:
        return int((await self.store.fetch("SELECT COUNT(*) FROM request_bodies"))[0][0])

    async def get(self, request_id: str) -> dict[str, Any] | None:
        rows = await self.store.fetch(_SELECT_ONE, (request_id,))
        if not rows:
            return None
        headers, request, response, size = rows[0]
        return {
            "headers": msgspec.json.decode(headers) if headers else {},
            "request": request,
            "response": response,
            "bytes": int(size),
        }

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        try:
            await self.flush()
        except Exception as exc:
            log.error("body log: %d bodies could not be written: %s", len(self._unwritten), exc)
        self._rows_thread.shutdown(wait=False)
