"""Many instances on one PostgreSQL ledger: they start at once, and no row is written twice."""

from __future__ import annotations

import asyncio
import uuid

from llmmux.ledger import PostgresStore
from llmmux.ledger.schema import MIGRATIONS
from support.ledgers import ledger_row
from support.postgres import TempPostgres


async def test_instances_starting_at_once_migrate_once(postgres: TempPostgres) -> None:
    url = postgres.create_database("many_" + uuid.uuid4().hex[:10])
    stores = [PostgresStore(url) for _ in range(8)]
    await asyncio.gather(*(store.open() for store in stores))
    try:
        versions = await stores[0].fetch("SELECT version FROM llmmux_schema ORDER BY version")
        assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_a_batch_written_twice_by_two_instances_is_stored_once(postgres: TempPostgres) -> None:
    url = postgres.create_database("dup_" + uuid.uuid4().hex[:10])
    first, second = PostgresStore(url), PostgresStore(url)
    await first.open()
    await second.open()
    try:
        rows = [ledger_row(request_id=f"r{i}") for i in range(50)]
        # A writer that retries a batch whose commit it did not see acknowledged, racing another.
        await asyncio.gather(first.insert_requests(rows), second.insert_requests(rows[25:]))
        await first.insert_requests(rows[:10])
        assert await first.count_requests() == 50
    finally:
        await first.close()
        await second.close()
