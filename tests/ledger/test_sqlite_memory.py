"""The SQLite ledger's memory stays flat whatever the sizes of the batches it writes."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import pytest

from llmmux.ledger import SQLiteStore
from llmmux.ledger.sqlite import INSERT_CHUNKS, chunk_sizes
from support.ledgers import ledger_row

_SQLITE = ctypes.util.find_library("sqlite3")


def test_batches_split_into_a_few_statement_sizes() -> None:
    for rows in (1, 7, 500, 1023, 3001):
        sizes = chunk_sizes(rows, 1000)
        assert sum(sizes) == rows and set(sizes) <= set(INSERT_CHUNKS) and max(sizes) <= 1000
        assert sizes == sorted(sizes, reverse=True)
    assert chunk_sizes(5, 3) == [1] * 5  # a width that fits fewer rows than the smallest chunk still writes


@pytest.mark.skipif(_SQLITE is None, reason="the sqlite3 module's library is not a shared library here")
async def test_batches_of_every_size_leave_no_statement_per_size_behind(tmp_path: Path) -> None:
    """A worker's writer sees every batch size from 1 to 500: before, each size stayed compiled (20 MB)."""
    library = ctypes.CDLL(_SQLITE)
    library.sqlite3_memory_used.restype = ctypes.c_int64
    store = SQLiteStore(str(tmp_path / "ledger.db"))
    await store.open()
    try:
        n = 0
        for size in range(1, 161):
            await store.insert_requests([ledger_row(request_id=f"r{n + i}") for i in range(size)])
            n += size
            if size == 10:
                settled = library.sqlite3_memory_used()
        grown = library.sqlite3_memory_used() - settled
    finally:
        await store.close()
    assert grown < 2_000_000, f"the ledger's SQLite memory grew {grown / 1e6:.1f} MB over 150 batch sizes"
