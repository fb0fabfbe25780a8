"""The batched writer: nothing on the hot path but a list append, nothing lost on close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from llmmux.ledger import LedgerWriter, Row, SQLiteStore
from support.ledgers import ledger_row as row


class FlakyStore(SQLiteStore):
    """A real SQLite ledger whose first `failures` writes fail, as an unreachable database would."""

    def __init__(self, path: Path, failures: int = 0) -> None:
        super().__init__(path)
        self.failures = failures
        self.batches: list[int] = []

    async def insert_requests(self, rows: Sequence[Row]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database unreachable")
        self.batches.append(len(rows))
        await super().insert_requests(rows)


async def test_a_full_batch_is_written_without_waiting_for_the_interval(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "l.db")
    await store.open()
    written: list[int] = []
    writer = LedgerWriter(store, flush_interval_s=60, batch_size=100, on_written=lambda rows: written.append(len(rows)))
    await writer.start()
    for i in range(100):
        writer.add(row(request_id=str(i)))
    for _ in range(200):
        if writer.written == 100:
            break
        await asyncio.sleep(0.01)
    assert writer.written == 100  # a full batch went at once, not after the 60 s interval
    for i in range(100, 150):
        writer.add(row(request_id=str(i)))
    await asyncio.sleep(0.05)
    assert writer.pending == 50  # a partial batch waits for the interval
    await writer.aclose()
    assert await store.count_requests() == 150 and store.batches == [100, 50] and written == [100, 50]
    await store.close()


async def test_rows_wait_out_an_outage_and_are_written_once(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "l.db", failures=2)
    await store.open()
    writer = LedgerWriter(store, flush_interval_s=0.01, batch_size=10)
    await writer.start()
    for i in range(25):
        writer.add(row(request_id=str(i)))
    for _ in range(300):
        if writer.written == 25:
            break
        await asyncio.sleep(0.01)
    await writer.aclose()
    assert store.failures == 0 and writer.dropped == 0
    assert await store.count_requests() == 25
    await store.close()


async def test_past_max_pending_the_oldest_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "l.db")
    await store.open()
    dropped: list[int] = []
    writer = LedgerWriter(store, flush_interval_s=60, batch_size=1000, max_pending=10, on_dropped=dropped.append)
    for i in range(15):
        writer.add(row(request_id=str(i)))
    assert writer.pending == 10 and sum(dropped) == 5 == writer.dropped
    await writer.aclose()
    assert await store.request_ids() == {str(i) for i in range(5, 15)}
    await store.close()


async def test_close_writes_everything_and_later_rows_are_counted_as_lost(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "l.db")
    await store.open()
    writer = LedgerWriter(store, flush_interval_s=3600)
    await writer.start()
    for i in range(7):
        writer.add(row(request_id=str(i)))
    await writer.aclose()
    assert await store.count_requests() == 7
    writer.add(row(request_id="late"))
    assert writer.dropped == 1
    await store.close()


async def test_a_database_that_never_comes_back_loses_rows_loudly(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "l.db", failures=10**6)
    await store.open()
    writer = LedgerWriter(store, flush_interval_s=3600, close_retry_s=0)
    writer.add(row(request_id="x"))
    await writer.aclose()
    assert writer.dropped == 1 and writer.pending == 0
    await store.close()
