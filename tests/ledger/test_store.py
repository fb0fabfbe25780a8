"""The ledger store, one suite for both engines (each test runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from typing import Any

import pytest

from llmmux.keys import make_key
from llmmux.ledger import SQLiteStore, Store
from llmmux.ledger.schema import LATEST, MIGRATIONS, Migration, SchemaTooNew
from support.ledgers import ledger_row as row
from support.ledgers import make_store

DAY = 86400.0
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


async def test_open_creates_the_schema_once(store: Store, ledger_url: str) -> None:
    assert await store.schema_version() == LATEST
    again = make_store(ledger_url)
    await again.open()  # reopening an existing ledger applies nothing and keeps everything
    try:
        assert await again.schema_version() == LATEST
        assert await again.fetch("SELECT COUNT(*) FROM llmmux_schema") == [(len(MIGRATIONS),)]
    finally:
        await again.close()


async def test_sqlite_uses_wal_and_creates_its_folder(tmp_path: Any) -> None:
    path = tmp_path / "new" / "folder" / "llmmux.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_two_processes_starting_together_migrate_once(ledger_url: str) -> None:
    stores = [make_store(ledger_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        versions = await stores[0].fetch("SELECT version FROM llmmux_schema ORDER BY version")
        assert versions == [(m.version,) for m in MIGRATIONS]
    finally:
        for s in stores:
            await s.close()


NEXT = Migration(
    LATEST + 1,
    "a later column",
    sqlite=("ALTER TABLE requests ADD COLUMN region TEXT NOT NULL DEFAULT 'eu'",),
    postgres=("ALTER TABLE requests ADD COLUMN IF NOT EXISTS region TEXT NOT NULL DEFAULT 'eu'",),
)


async def test_a_later_migration_keeps_every_row(store: Store, ledger_url: str) -> None:
    await store.insert_requests([row(request_id=f"r{i}") for i in range(20)])
    key, _ = make_key("ci")
    await store.insert_key(key)
    upgraded = make_store(ledger_url)
    await upgraded.open((*MIGRATIONS, NEXT))
    try:
        assert await upgraded.schema_version() == NEXT.version
        assert await upgraded.fetch("SELECT COUNT(*), MIN(region), MAX(region) FROM requests") == [(20, "eu", "eu")]
        assert [k.id for k in await upgraded.list_keys()] == [key.id]
    finally:
        await upgraded.close()
    older = make_store(ledger_url)
    with pytest.raises(SchemaTooNew, match=f"schema version {NEXT.version}, newer than this llmmux knows"):
        await older.open()
    await older.close()


# Indexes whose content lives in another table: dropping one loses nothing (the bodies'
# full-text index is rebuilt from request_bodies by the body log).
DERIVED = ("DROP TABLE IF EXISTS request_bodies_fts",)


def test_no_migration_drops_renames_or_rewrites_data() -> None:
    forbidden = re.compile(r"\b(DROP|DELETE|TRUNCATE|RENAME|UPDATE|ALTER\s+COLUMN)\b", re.IGNORECASE)
    for migration in MIGRATIONS:
        for statement in (*migration.sqlite, *migration.postgres):
            assert statement in DERIVED or not forbidden.search(statement), (migration.version, statement)
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


async def test_a_batch_written_twice_is_stored_once(store: Store) -> None:
    batch = [row(request_id=f"r{i}") for i in range(5)]
    await store.insert_requests(batch)
    await store.insert_requests(batch)  # the writer retrying after a lost commit acknowledgement
    assert await store.count_requests() == 5


async def test_pages_newest_first_with_filters(store: Store) -> None:
    attempts = (
        '[{"provider":"dead","model":"x","error":"connect_error","status":null,"message":"refused","elapsed_ms":1.0}]'
    )
    await store.insert_requests(
        [
            row(request_id="a", key_id="k1", stream=True, estimated=True),
            row(
                request_id="b",
                public_model="other",
                status=502,
                error_kind="all_providers_failed",
                provider=None,
                model=None,
                attempt_log=attempts,
            ),
            row(request_id="c", key_id="k1"),
        ]
    )
    page = await store.page_requests(limit=2)
    assert [r["request_id"] for r in page] == ["c", "b"]
    assert page[1]["failed_attempts"][0]["error"] == "connect_error" and page[1]["provider"] is None
    rest = await store.page_requests(limit=2, before=page[-1]["id"])
    assert [(r["request_id"], r["stream"], r["estimated"]) for r in rest] == [("a", True, True)]
    assert [r["request_id"] for r in await store.page_requests(key_id="k1")] == ["c", "a"]
    assert [r["request_id"] for r in await store.page_requests(model="other")] == ["b"]
    assert [r["request_id"] for r in await store.page_requests(errors=True)] == ["b"]


async def test_usage_totals_errors_and_latency_percentiles(store: Store) -> None:
    rows = [row(request_id=f"ok{i}", latency_ms=float(ms), cost_usd=0.01) for i, ms in enumerate((10, 20, 30, 40, 100))]
    rows += [
        row(request_id="err", status=502, latency_ms=5000.0, cost_usd=0.0, prompt_tokens=0, completion_tokens=0),
        row(request_id="old", ts=T0 - 10 * DAY),
        row(request_id="est", public_model="local", provider="ollama", estimated=True, cost_usd=0.0, latency_ms=50.0),
    ]
    await store.insert_requests(rows)
    by_model = await store.usage(since=T0 - DAY, by="model")
    chat, local = by_model  # ordered by cost
    assert chat == {
        "group": "chat",
        "requests": 6,
        "errors": 1,
        "prompt_tokens": 50,
        "completion_tokens": 25,
        "total_tokens": 75,
        "cached_tokens": 0,
        "cost_usd": pytest.approx(0.05),
        # successes only: 10 20 30 40 100 -> p50 30, p95 at 3.8 of 4: 40 + 0.8 * 60 = 88
        # from the rollups' latency histograms: within 2% of the exact values
        "p50_latency_ms": pytest.approx(30.0, rel=0.02),
        "p95_latency_ms": pytest.approx(88.0, rel=0.02),
        "estimated": 0,
        "cache_hits": 0,
        "saved_usd": 0.0,
    }
    assert (local["group"], local["requests"], local["estimated"]) == ("local", 1, 1)
    providers = {r["group"]: r["requests"] for r in await store.usage(since=T0 - DAY, by="provider")}
    assert providers == {"main": 6, "ollama": 1}
    days = await store.usage(since=T0 - 30 * DAY, by="day")
    assert [(r["group"], r["requests"]) for r in days] == [("2026-09-11", 1), ("2026-09-21", 7)]
    assert [r["requests"] for r in await store.usage(since=T0 - 30 * DAY, until=T0 - DAY, by="model")] == [1]


async def test_keys_round_trip_and_spend_per_period(store: Store) -> None:
    monthly, _ = make_key("team", budget_usd=25, rpm=60, tpm=100_000, models=["gpt-4o", "llama*"], expires_at=T0 + DAY)
    total, _ = make_key("ci", budget_usd=5, budget_period="total")
    await store.insert_key(monthly)
    await store.insert_key(total)
    assert await store.get_key(monthly.id) == monthly
    assert [k.id for k in await store.find_keys("ci")] == [total.id]
    monthly.revoked_at = T0
    monthly.models = []
    await store.save_key(monthly)
    assert await store.get_key(monthly.id) == monthly
    assert [k.name for k in await store.list_keys()] == ["team", "ci"]
    await store.insert_requests(
        [
            row(request_id="1", key_id=monthly.id, cost_usd=1.5, ts=T0),
            row(request_id="2", key_id=monthly.id, cost_usd=2.0, ts=T0 - 40 * DAY),
            row(request_id="3", key_id=total.id, cost_usd=0.25, ts=T0 - 400 * DAY),
            row(request_id="4", key_id=total.id, cost_usd=0.5, ts=T0),
        ]
    )
    spend = await store.key_spend({monthly.id: T0 - DAY, total.id: 0.0})
    assert spend == {monthly.id: pytest.approx(1.5), total.id: pytest.approx(0.75)}
    assert await store.key_spend({}) == {}
