"""The console's ledger queries on SQLite and PostgreSQL: overview buckets and the request search filters."""

from __future__ import annotations

import time

import pytest

from llmmux.errors import InvalidRequest
from llmmux.ledger import Store
from llmmux.ledger.store import RequestFilters
from llmmux.server import admin_ops
from support.ledgers import ledger_row


async def test_stats_put_each_request_in_its_minute(store: Store) -> None:
    now = time.time()
    rows = [
        ledger_row(request_id="a", ts=now - 30.5 * 60, latency_ms=100.0, upstream_ms=90.0, total_tokens=10),
        ledger_row(request_id="b", ts=now - 30.2 * 60, latency_ms=300.0, upstream_ms=280.0, total_tokens=20),
        ledger_row(request_id="c", ts=now - 5.5 * 60, status=502, error_kind="upstream_error", latency_ms=50.0),
        ledger_row(request_id="old", ts=now - 2 * 3600),
    ]
    await store.insert_requests(rows)
    result = await admin_ops.stats(store, {"window": "1h", "points": "60"})
    series = result["series"]
    assert len(series) == 60 and result["step_s"] == 60.0
    busy = [(i, p) for i, p in enumerate(series) if p["requests"]]
    assert [i for i, _ in busy] == [29, 54]
    first, second = busy[0][1], busy[1][1]
    assert (first["requests"], first["errors"], first["tokens"]) == (2, 0, 30)
    assert first["p50_ms"] == 200.0 and first["overhead_ms"] == 15.0
    assert (second["errors"], second["error_rate"], second["p50_ms"]) == (1, 1.0, None)
    with pytest.raises(InvalidRequest):
        await admin_ops.stats(store, {"window": "3y"})


async def test_request_search_filters(store: Store) -> None:
    now = time.time()
    await store.insert_requests(
        [
            ledger_row(request_id="c", ts=now - 7200, provider="beta", status=200),
            ledger_row(request_id="b", ts=now - 20, provider="beta", status=429, error_kind="rate_limited"),
            ledger_row(request_id="a", ts=now - 10, provider="alpha", status=200),
        ]
    )

    async def ids(**filters: object) -> list[str]:
        found = await store.page_requests(50, filters=RequestFilters(**filters))  # type: ignore[arg-type]
        return [r["request_id"] for r in found]

    assert await ids(provider="beta") == ["b", "c"]
    assert await ids(status=429) == ["b"]
    assert await ids(error_kind="rate_limited") == ["b"]
    assert await ids(since=now - 3600) == ["a", "b"]
    assert await ids(until=now - 3600) == ["c"]
    assert await ids(request_id="c") == ["c"]
    assert await ids(text="anything") == []  # no bodies logged: nothing to find
