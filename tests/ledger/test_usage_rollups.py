"""Usage reports from the rollups: the same numbers as the raw rows, fast, on SQLite and PostgreSQL.

Every report is checked against a brute-force computation over the rows it covers: the
totals exactly (costs to rounding), the latency percentiles to 2%.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import pytest

from llmmux.ledger import Store
from llmmux.ledger.rollups import DAY, HOUR, Filters, Span, plan
from llmmux.ledger.schema import MIGRATIONS, REQUEST_COLUMNS
from support import Gateway
from support.ledgers import ledger_config, ledger_row, make_store

NOW = time.time()
KEYS = ["k1", "k2", "k3", None]
MODELS = [("chat", "main", "m1"), ("chat", "spare", "m2"), ("code", "main", "m3"), ("embed", None, None)]
COLUMN = {name: i for i, name in enumerate(REQUEST_COLUMNS)}
# The columns a ledger had before the rollups (later migrations add the rest).
LATER = ("cache", "saved_usd", "cache_source", "tags", "end_user", "team_id")
OLD_COLUMNS = tuple(c for c in REQUEST_COLUMNS if c not in LATER)


def _before_rollups() -> int:
    """How many migrations a ledger had before the rollups came."""
    return next(i for i, m in enumerate(MIGRATIONS) if "rollups" in m.description)


def make_rows(count: int, start: float, end: float, seed: int = 1) -> list[tuple[Any, ...]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(count):
        public, provider, model = rnd.choice(MODELS)
        failed = rnd.random() < 0.1
        rows.append(
            ledger_row(
                request_id=f"r{seed}-{i}",
                ts=start + rnd.random() * (end - start),
                key_id=rnd.choice(KEYS),
                public_model=public,
                provider=provider,
                model=model,
                prompt_tokens=rnd.randint(0, 500),
                completion_tokens=rnd.randint(0, 200),
                cached_tokens=rnd.randint(0, 50),
                estimated=rnd.random() < 0.1,
                cost_usd=rnd.random() / 100,
                latency_ms=rnd.lognormvariate(math.log(300), 0.8),
                status=502 if failed else 200,
            )
        )
    return rows


def exact_percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def group_of(row: Sequence[Any], by: str) -> str:
    get = {name: row[i] for name, i in COLUMN.items()}
    if by == "model":
        return str(get["public_model"])
    if by == "provider":
        return get["provider"] or ""
    if by == "key":
        return get["key_id"] or ""
    if by == "upstream":
        return f"{get['provider'] or ''}/{get['model'] or ''}"
    return time.strftime("%Y-%m-%d", time.gmtime(get["ts"]))


def brute_force(
    rows: list[tuple[Any, ...]], since: float, until: float | None, by: str, filters: Filters
) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for row in rows:
        ts, key, public = row[COLUMN["ts"]], row[COLUMN["key_id"]] or "", row[COLUMN["public_model"]]
        if ts < since or (until is not None and ts >= until):
            continue
        if (filters.key_id is not None and key != filters.key_id) or (
            filters.model is not None and public != filters.model
        ):
            continue
        groups.setdefault(group_of(row, by), []).append(row)
    result = {}
    for group, members in groups.items():
        ok = [r[COLUMN["latency_ms"]] for r in members if r[COLUMN["status"]] < 400]
        result[group] = {
            "requests": len(members),
            "errors": sum(1 for r in members if r[COLUMN["status"]] >= 400),
            "prompt_tokens": sum(r[COLUMN["prompt_tokens"]] for r in members),
            "completion_tokens": sum(r[COLUMN["completion_tokens"]] for r in members),
            "cached_tokens": sum(r[COLUMN["cached_tokens"]] for r in members),
            "cost_usd": sum(r[COLUMN["cost_usd"]] for r in members),
            "estimated": sum(1 for r in members if r[COLUMN["estimated"]]),
            "p50": exact_percentile(ok, 0.5),
            "p95": exact_percentile(ok, 0.95),
        }
    return result


def assert_matches(report: list[dict[str, Any]], expected: dict[str, dict[str, Any]]) -> None:
    assert {r["group"] for r in report} == set(expected)
    for row in report:
        want = expected[row["group"]]
        for column in ("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens", "estimated"):
            assert row[column] == want[column], (row["group"], column)
        assert row["cost_usd"] == pytest.approx(want["cost_usd"], abs=1e-9)
        for ours, exact in ((row["p50_latency_ms"], want["p50"]), (row["p95_latency_ms"], want["p95"])):
            assert (ours is None) == (exact is None)
            if exact is not None:
                assert ours == pytest.approx(exact, rel=0.021), row["group"]


# Spans that start and end inside hours and days, whole days, less than an hour, open-ended.
SPANS = [
    (NOW - 3 * DAY - 1234.5, None),
    (NOW - 2 * DAY + 77.7, NOW - 5 * HOUR - 5.5),
    (NOW - 30 * 60, None),
    (NOW - DAY - 600, NOW - DAY + 600),
    (math.floor(NOW / DAY) * DAY - 2 * DAY, math.floor(NOW / DAY) * DAY),
]


async def test_reports_equal_the_raw_rows_for_every_grouping_span_and_filter(store: Store) -> None:
    rows = make_rows(3000, NOW - 4 * DAY, NOW + 60)
    for start in range(0, len(rows), 250):  # batches, as the writer sends them
        await store.insert_requests(rows[start : start + 250])
    for since, until in SPANS:
        for by in ("model", "provider", "key", "day", "upstream"):
            assert_matches(await store.usage(since, until, by), brute_force(rows, since, until, by, Filters()))
    for filters in (Filters(key_id="k2"), Filters(model="chat"), Filters(key_id="", model="code")):
        since, until = SPANS[1]
        for by in ("model", "key", "day"):
            got = await store.usage(since, until, by, filters)
            assert_matches(got, brute_force(rows, since, until, by, filters))


async def test_totals_sum_every_group(store: Store) -> None:
    rows = make_rows(800, NOW - 2 * DAY, NOW, seed=2)
    await store.insert_requests(rows)
    groups, total = await store.usage_table(NOW - 3 * DAY, None, "key")
    expected = brute_force(rows, NOW - 3 * DAY, None, "model", Filters())
    assert total["requests"] == 800 == sum(g["requests"] for g in groups)
    everything = [r for r in rows]
    ok = [r[COLUMN["latency_ms"]] for r in everything if r[COLUMN["status"]] < 400]
    assert total["p95_latency_ms"] == pytest.approx(exact_percentile(ok, 0.95), rel=0.021)
    assert total["cost_usd"] == pytest.approx(sum(e["cost_usd"] for e in expected.values()), abs=1e-9)
    _, empty = await store.usage_table(NOW + DAY, None, "model")
    assert (empty["requests"], empty["p50_latency_ms"]) == (0, None)


async def test_a_batch_written_twice_is_counted_once(store: Store) -> None:
    rows = make_rows(300, NOW - DAY, NOW, seed=3)
    await store.insert_requests(rows)
    await store.insert_requests(rows[:200] + make_rows(10, NOW - DAY, NOW, seed=4))  # a retry, plus new rows
    (total,) = await store.usage(NOW - 2 * DAY, None, "all")
    assert total["requests"] == 310
    daily = await store.fetch("SELECT SUM(requests) FROM usage_rollup WHERE grain = ?", (DAY,))
    hourly = await store.fetch("SELECT SUM(requests) FROM usage_rollup WHERE grain = ?", (HOUR,))
    assert int(daily[0][0]) == int(hourly[0][0]) == 310


async def test_a_ledger_from_before_the_rollups_is_backfilled(ledger_url: str) -> None:
    rows = make_rows(1500, NOW - 3 * DAY, NOW, seed=5)
    old = make_store(ledger_url)
    await old.open(MIGRATIONS[: _before_rollups()])  # the schema as an older llmmux left it
    try:
        marks = ", ".join("?" * len(OLD_COLUMNS))
        old_rows = [tuple(row[COLUMN[c]] for c in OLD_COLUMNS) for row in rows]
        await old.executemany(f"INSERT INTO requests ({', '.join(OLD_COLUMNS)}) VALUES ({marks})", old_rows)
    finally:
        await old.close()
    upgraded = make_store(ledger_url)
    await upgraded.open()
    try:
        for by in ("model", "day", "key"):
            since = NOW - 3 * DAY - 10
            assert_matches(await upgraded.usage(since, None, by), brute_force(rows, since, None, by, Filters()))
        await upgraded.insert_requests(make_rows(5, NOW - 10, NOW, seed=6))  # and kept up from then on
        (total,) = await upgraded.usage(NOW - 4 * DAY, None, "all")
        assert total["requests"] == 1505
    finally:
        await upgraded.close()


def test_the_plan_covers_the_span_exactly_once() -> None:
    rnd = random.Random(9)
    for _ in range(2000):
        since = NOW - rnd.random() * 40 * DAY
        until = None if rnd.random() < 0.3 else since + rnd.random() * 10 * DAY
        the_plan = plan(since, until, NOW)
        end = until if until is not None else math.inf
        pieces = [(s.start, s.end if s.end is not None else math.inf) for s in (*the_plan.days, *the_plan.hours)]
        pieces += [(s.start, s.end if s.end is not None else math.inf) for s in the_plan.raw]
        pieces.sort()
        assert pieces[0][0] == since and pieces[-1][1] == end
        for (_, a_end), (b_start, _) in itertools.pairwise(pieces):
            assert a_end == b_start  # no gap, no overlap
        assert all(s.start % DAY == 0 and s.end is not None and s.end % DAY == 0 for s in the_plan.days)
        assert all(s.start % HOUR == 0 and s.end is not None and s.end % HOUR == 0 for s in the_plan.hours)
        assert all(s.end is None or s.end - s.start < 2 * HOUR for s in the_plan.raw if s.start != since)
    example = plan(10 * DAY + 1800, 13 * DAY + 5400, NOW)
    assert example.days == [Span(11 * DAY, 13 * DAY)]
    assert example.hours == [Span(10 * DAY + 3600, 11 * DAY), Span(13 * DAY, 13 * DAY + 3600)]
    assert example.raw == [Span(10 * DAY + 1800, 10 * DAY + 3600), Span(13 * DAY + 3600, 13 * DAY + 5400)]
    assert plan(NOW - 60, None, NOW).days == []


# 200k rows made by the database itself (seconds, where 200k inserts from here take a minute),
# into the schema as an older llmmux left it, so opening the ledger backfills the rollups.
_SERIES = {
    "sqlite": "WITH RECURSIVE series(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM series WHERE i < {count}) "
    "INSERT INTO requests ({columns}) SELECT {values} FROM series",
    "postgres": "INSERT INTO requests ({columns}) SELECT {values} FROM generate_series(1, {count}) AS series(i)",
}
_GENERATED = {
    "request_id": "'g' || i",
    "ts": "{now} - i * (30 * 86400.0 / {count})",
    "key_id": "CASE WHEN i % 9 = 0 THEN NULL ELSE 'k' || (i % 40) END",
    "client_api": "'openai'",
    "public_model": "'model-' || (i % 12)",
    "provider": "'provider-' || (i % 5)",
    "model": "'upstream-' || (i % 12)",
    "stream": "{false}",
    "attempts": "1",
    "fallbacks": "0",
    "retries": "0",
    "prompt_tokens": "i % 4000",
    "completion_tokens": "i % 1000",
    "cached_tokens": "0",
    "cache_write_tokens": "0",
    "reasoning_tokens": "0",
    "total_tokens": "i % 4000 + i % 1000",
    "estimated": "{false}",
    "cost_usd": "(i % 100) / 10000.0",
    "latency_ms": "50 + ((i * 7919) % 5000) / 3.0",
    "ttft_ms": "NULL",
    "upstream_ms": "40.0",
    "status": "CASE WHEN i % 33 = 0 THEN 502 ELSE 200 END",
    "error_kind": "NULL",
    "attempt_log": "NULL",
    "parent_id": "NULL",
}


async def test_a_report_over_200k_rows_answers_fast(ledger_url: str) -> None:
    count = 200_000
    old = make_store(ledger_url)
    await old.open(MIGRATIONS[: _before_rollups()])
    try:
        values = ", ".join(_GENERATED[c] for c in OLD_COLUMNS)
        sql = _SERIES[old.dialect].format(columns=", ".join(OLD_COLUMNS), values=values, count=count)
        await old.execute(sql.format(now=NOW, count=count, false="0" if old.dialect == "sqlite" else "false"))
    finally:
        await old.close()
    store = make_store(ledger_url)
    await store.open()
    try:
        elapsed = {}
        for by in ("key", "model", "day", "provider"):
            started = time.perf_counter()
            groups, total = await store.usage_table(NOW - 31 * DAY, None, by)
            elapsed[by] = time.perf_counter() - started
            assert total["requests"] == count and groups
        # Reading the raw rows took 2 to 3 s a report here; the rollups take well under 0.2 s.
        # The bound is generous for a loaded CI machine.
        assert sum(elapsed.values()) < 3.0, elapsed
    finally:
        await store.close()


async def test_the_admin_api_filters_by_key_and_model(ledger_url: str) -> None:
    rows = make_rows(600, NOW - 2 * DAY, NOW - 60, seed=8)
    store = make_store(ledger_url)
    await store.open()
    try:
        await store.insert_requests(rows)
    finally:
        await store.close()
    master = "sk-master-usage-filters"
    config = {
        "server": {"master_key": master},
        "ledger": ledger_config(ledger_url),
        "providers": {"main": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m1"]}},
    }
    since = NOW - 3 * DAY
    with Gateway(config) as gw:
        reply = await asyncio.to_thread(gw.get, "/admin/usage?since=3d&by=day&key=k2&model=chat", master)
        assert reply.status_code == 200, reply.text
        report = reply.json()
        assert (report["key"], report["model"]) == ("k2", "chat")
        expected = brute_force(rows, since, None, "day", Filters(key_id="k2", model="chat"))
        assert {r["group"]: r["requests"] for r in report["rows"]} == {g: v["requests"] for g, v in expected.items()}
        assert report["totals"]["requests"] == sum(v["requests"] for v in expected.values())
        unkeyed = (await asyncio.to_thread(gw.get, "/admin/usage?since=3d&by=key&key=none", master)).json()
        assert [r["group"] for r in unkeyed["rows"]] == [""] and unkeyed["key"] == "none"
