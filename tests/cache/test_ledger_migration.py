"""A ledger written before the cache opens with it: every row kept, the new columns at their defaults."""

from __future__ import annotations

import time

from llmmux.ledger.schema import LATEST, MIGRATIONS
from support.ledgers import make_store

V1_COLUMNS = (
    "request_id, ts, client_api, public_model, provider, model, stream, attempts, fallbacks, retries, "
    "prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, total_tokens, "
    "estimated, cost_usd, latency_ms, upstream_ms, status"
)


async def test_a_ledger_from_before_the_cache_keeps_its_rows(ledger_url: str) -> None:
    old = make_store(ledger_url)
    await old.open(MIGRATIONS[:1])
    now = time.time()
    for i in range(3):
        await old.execute(
            f"INSERT INTO requests ({V1_COLUMNS}) VALUES (?, ?, 'openai', 'chat', 'p', 'm', ?, 1, 0, 0, 2, 3, 0, 0, 0, 5, ?, 0.5, 10, 9, 200)",
            (f"old{i}", now, False, False),
        )
    await old.close()
    upgraded = make_store(ledger_url)
    await upgraded.open()
    try:
        assert await upgraded.schema_version() == LATEST
        rows = await upgraded.page_requests(limit=10)
        assert sorted(r["request_id"] for r in rows) == ["old0", "old1", "old2"]
        assert {(r["cache"], r["saved_usd"], r["cache_source"]) for r in rows} == {(None, 0.0, None)}
        totals = (await upgraded.usage(now - 60, by="all"))[0]
        assert (totals["requests"], totals["cost_usd"], totals["cache_hits"], totals["saved_usd"]) == (3, 1.5, 0, 0.0)
    finally:
        await upgraded.close()
