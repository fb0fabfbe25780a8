"""Batched ledger writes, off the hot path.

`add` appends a row to a list: that is all a request pays. A background task writes
the list every `flush_interval` seconds, or sooner once `batch_size` rows wait, in one
transaction. If the database is unreachable the rows stay buffered and the write is
retried with backoff; past `max_pending` rows the oldest are dropped and counted.
`aclose` writes everything still buffered.

So a crash (kill -9, OOM) loses at most the rows of the last flush interval (plus the
0.1 s the accounting batches them for, and the requests still in progress); a graceful
shutdown loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from .store import Row, Store

log = logging.getLogger("llmmux.ledger")

MAX_BACKOFF_S = 30.0
CLOSE_ATTEMPTS = 3
STOP_WAIT_S = 15.0
CLOSE_RETRY_S = 0.5


class LedgerWriter:
    """Buffers rows and writes them in batches. `await start()`, `add(row)`, `await aclose()`."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_s: float = 1.0,
        batch_size: int = 500,
        max_pending: int = 100_000,
        on_written: Callable[[list[Row]], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        after_flush: Callable[[], Awaitable[None]] | None = None,
        lock: asyncio.Lock | None = None,
        close_retry_s: float = CLOSE_RETRY_S,
    ) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.on_written = on_written
        self.on_dropped = on_dropped
        self.after_flush = after_flush
        self._lock = lock or asyncio.Lock()
        self.close_retry_s = close_retry_s
        self.dropped = 0
        self.written = 0
        self._pending: list[Row] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._stopping = False

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, row: Row) -> None:
        if self._closed:
            # Only a request that outlived the server's graceful shutdown gets here.
            self._drop(1)
            log.error("ledger closed; dropped record %s", row[0])
            return
        pending = self._pending
        pending.append(row)
        if len(pending) >= self.batch_size:
            self._wake.set()
        if len(pending) > self.max_pending:
            over = len(pending) - self.max_pending
            del pending[:over]
            self._drop(over)

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self.on_dropped is not None:
            self.on_dropped(count)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="llmmux-ledger-writer")

    async def _run(self) -> None:
        failures = 0
        while not self._stopping:
            delay = self.flush_interval_s if not failures else min(MAX_BACKOFF_S, self.flush_interval_s * 2**failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
            except Exception as exc:
                failures += 1
                log.error(
                    "ledger write to %s failed (%d rows buffered, retrying): %s",
                    self.store.location,
                    len(self._pending),
                    exc,
                )
                continue
            failures = 0
            if self.after_flush is not None:
                try:
                    await self.after_flush()
                except Exception:
                    log.exception("ledger refresh failed")

    async def flush(self) -> None:
        """Write everything buffered now; on failure the rows go back to the front of the buffer."""
        async with self._lock:
            await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self.batch_size]
            del self._pending[: len(batch)]
            try:
                await self.store.insert_requests(batch)
            except BaseException:
                self._pending[:0] = batch
                raise
            self.written += len(batch)
            if self.on_written is not None:
                self.on_written(batch)

    async def aclose(self) -> None:
        """Stop the background task and write what is left (a few tries, then report the loss)."""
        if self._task is not None:
            # Let a write in progress finish rather than cancel it halfway.
            self._stopping = True
            self._wake.set()
            try:
                await asyncio.wait_for(self._task, STOP_WAIT_S)
            except (TimeoutError, asyncio.CancelledError):
                pass
            self._task = None
        for attempt in range(CLOSE_ATTEMPTS):
            try:
                await self.flush()
                break
            except Exception as exc:
                log.error("ledger final write failed (try %d of %d): %s", attempt + 1, CLOSE_ATTEMPTS, exc)
                await asyncio.sleep(self.close_retry_s * (attempt + 1))
        if self._pending:
            self._drop(len(self._pending))
            log.error(
                "ledger: %d records could not be written to %s and are lost", len(self._pending), self.store.location
            )
            self._pending.clear()
        self._closed = True
