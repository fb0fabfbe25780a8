"""The ledger database, whatever engine holds it: request rows, virtual keys and reports.

The SQL is written once with `?` placeholders; an engine module supplies how to run it
(SQLite in a thread, PostgreSQL over asyncpg) and the few expressions that differ.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from ..enduser import parse_end_user_limits
from ..keys import VirtualKey
from ..tags import needle
from .rollups import (
    SUM_COLUMNS,
    Dialect,
    Filters,
    cache_query,
    histogram_queries,
    histograms,
    percentile,
    plan,
    raw_conditions,
    raw_group,
    sums_query,
)
from .schema import KEY_COLUMNS, MIGRATIONS, REQUEST_COLUMNS, Migration

Row = tuple[Any, ...]

REPORT_GROUPS = ("model", "provider", "key", "day", "upstream", "tag", "user", "team")
RAW_GROUPS = ("tag", "user", "team")  # not in the rollups: read from the rows
UsageRow = dict[str, Any]


class RequestFilters(msgspec.Struct, frozen=True):
    """Narrowing of `page_requests` beyond key, model and errors: what the console's search sends."""

    provider: str | None = None
    status: int | None = None
    error_kind: str | None = None
    since: float | None = None
    until: float | None = None
    request_id: str | None = None
    text: str | None = None  # words in the logged prompt or reply


PAGE_LIMIT_MAX = 1000

INSERT_REQUESTS_PREFIX = f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES "
_INSERT_KEY = f"INSERT INTO keys ({', '.join(KEY_COLUMNS)}) VALUES ({', '.join('?' * len(KEY_COLUMNS))})"
_UPDATE_KEY = f"UPDATE keys SET {', '.join(f'{c} = ?' for c in KEY_COLUMNS[1:])} WHERE id = ?"
_SELECT_KEYS = f"SELECT {', '.join(KEY_COLUMNS)} FROM keys"


class Store(abc.ABC):
    """One process's connection(s) to the ledger. `await store.open()` creates and migrates it."""

    dialect = ""

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the ledger is, safe to print (no password)."""

    @abc.abstractmethod
    async def open(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Connect, create the database if needed and apply pending migrations."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def execute(self, sql: str, args: Row = ()) -> None: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Row]) -> None:
        """Run `sql` for every row in one transaction."""

    @abc.abstractmethod
    async def fetch(self, sql: str, args: Row = ()) -> list[Row]: ...

    @abc.abstractmethod
    async def transaction(self, steps: Sequence[tuple[str, Sequence[Row]]]) -> None:
        """Run each `(sql, rows)` for every row, all of it in one transaction."""

    @abc.abstractmethod
    def percentile(self, expression: str, fraction: float) -> str:
        """SQL for the `fraction` percentile (linear interpolation) of `expression`, NULLs ignored."""

    @abc.abstractmethod
    def day(self, expression: str) -> str:
        """SQL for the UTC date (YYYY-MM-DD) of an epoch-seconds `expression`."""

    @property
    @abc.abstractmethod
    def sql(self) -> Dialect:
        """The expressions this engine writes its own way (ledger.rollups)."""

    async def schema_version(self) -> int:
        rows = await self.fetch("SELECT MAX(version) FROM llmmux_schema")
        return int(rows[0][0] or 0)

    # -- requests --

    @abc.abstractmethod
    async def insert_requests(self, rows: Sequence[Row]) -> None:
        """Write request rows (a retried batch's rows once) and add exactly those to the rollups."""

    async def count_requests(self) -> int:
        rows = await self.fetch("SELECT COUNT(*) FROM requests")
        return int(rows[0][0])

    async def request_ids(self) -> set[str]:
        return {r[0] for r in await self.fetch("SELECT request_id FROM requests")}

    async def page_requests(
        self,
        limit: int = 50,
        before: int | None = None,
        key_id: str | None = None,
        model: str | None = None,
        errors: bool = False,
        filters: RequestFilters | None = None,
    ) -> list[dict[str, Any]]:
        """The newest records first; pass the last row's `id` as `before` for the next page."""
        f = filters or RequestFilters()
        where, args = [], []
        for clause, value in (
            ("id < ?", before),
            ("key_id = ?", key_id),
            ("public_model = ?", model),
            ("provider = ?", f.provider),
            ("status = ?", f.status),
            ("error_kind = ?", f.error_kind),
            ("ts >= ?", f.since),
            ("ts < ?", f.until),
            ("request_id = ?", f.request_id),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        if errors:
            where.append("status >= 400")
        if f.text:
            search, search_args = self.body_search(f.text)
            where.append(f"request_id IN ({search})")
            args += search_args
        sql = f"SELECT id, {', '.join(REQUEST_COLUMNS)} FROM requests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self.fetch(sql, (*args, max(1, min(limit, PAGE_LIMIT_MAX))))
        return [_request_dict(row) for row in rows]

    @abc.abstractmethod
    def body_search(self, text: str) -> tuple[str, list[Any]]:
        """A `SELECT request_id FROM request_bodies ...` finding bodies where every word of `text` occurs, and its args."""

    async def usage(
        self, since: float, until: float | None = None, by: str = "model", filters: Filters = Filters()
    ) -> list[UsageRow]:
        """Totals per group since `since`: requests, errors, tokens, cost, p50/p95 latency of successes."""
        rows, total = await self.usage_table(since, until, by, filters)
        if by == "all":
            return [total] if total["requests"] else []
        return rows

    async def usage_table(
        self, since: float, until: float | None = None, by: str = "model", filters: Filters = Filters()
    ) -> tuple[list[UsageRow], UsageRow]:
        """One row per group and the totals, read from the rollups (ledger.rollups) plus the raw ends."""
        if by not in (*REPORT_GROUPS, "all"):
            raise ValueError(f"cannot group by {by!r} (choose from {', '.join(REPORT_GROUPS)})")
        if by in RAW_GROUPS or filters.tag is not None:
            return await self._usage_from_rows(since, until, by, filters)
        span = plan(since, until, time.time())
        sums_sql, sums_args = sums_query(span, by, self.sql, filters)
        rollups, (raw_sql, raw_args) = histogram_queries(span, by, self.sql, filters)
        cache_sql, cache_args = cache_query(since, until, by, self.sql, filters)
        sums, rollup_histograms, raw_histograms, cached = await asyncio.gather(
            self.fetch(sums_sql, tuple(sums_args)),
            self.fetch(rollups[0], tuple(rollups[1])) if rollups else _no_rows(),
            self.fetch(raw_sql, tuple(raw_args)),
            self.fetch(cache_sql, tuple(cache_args)),
        )
        hits = {row[0]: (int(row[1] or 0), float(row[2] or 0.0)) for row in cached}
        # Merging thousands of histograms is Python work: in a thread, so the event loop keeps
        # its turns (the GIL switches every 5 ms) instead of stalling for the whole merge.
        found = await asyncio.to_thread(histograms, rollup_histograms, raw_histograms)
        rows = [_usage_dict(row[0], row[1:], found.get(row[0], {}), hits.get(row[0], (0, 0.0))) for row in sums]
        if by == "day":
            rows.sort(key=lambda r: r["group"])
        else:
            rows.sort(key=lambda r: (-r["cost_usd"], -r["requests"], r["group"]))
        merged: dict[int, int] = {}
        for histogram in found.values():
            for bucket, count in histogram.items():
                merged[bucket] = merged.get(bucket, 0) + count
        columns = [sum(row[i] or 0 for row in sums) for i in range(1, 1 + len(SUM_COLUMNS))]
        all_hits = (sum(h for h, _ in hits.values()), sum(usd for _, usd in hits.values()))
        return rows, _usage_dict("all", columns, merged, all_hits)

    async def _usage_from_rows(
        self, since: float, until: float | None, by: str, filters: Filters
    ) -> tuple[list[UsageRow], UsageRow]:
        """By tag, end user or team, or within one tag: from the rows, which carry what the rollups do not.

        By tag, a request with two tags counts under each, so the rows may add up to more than
        the totals, which count each request once."""
        rows = [_row_usage(r) for r in await self.fetch(*self._rows_query(since, until, by, filters))]
        totals = [_row_usage(r) for r in await self.fetch(*self._rows_query(since, until, "all", filters))]
        if by == "day":
            rows.sort(key=lambda r: r["group"])
        else:
            rows.sort(key=lambda r: (-r["cost_usd"], -r["requests"], r["group"]))
        return rows, totals[0] if totals else _row_usage(("all", 0, 0, 0, 0, 0, 0.0, None, None, 0, 0, 0.0))

    def _rows_query(self, since: float, until: float | None, by: str, filters: Filters) -> tuple[str, Row]:
        group = {"tag": "COALESCE(t.value, '')", "user": "COALESCE(end_user, '')", "team": "COALESCE(team_id, '')"}
        expression = group.get(by) or raw_group(by, self.sql)
        ok_latency = "CASE WHEN status < 400 THEN latency_ms END"
        sql = (
            f"SELECT {expression} AS grp, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
            "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd), "
            f"{self.percentile(ok_latency, 0.5)}, {self.percentile(ok_latency, 0.95)}, "
            "SUM(CASE WHEN estimated THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN cache_source IS NOT NULL THEN 1 ELSE 0 END), SUM(saved_usd) "
            f"FROM {self._source(by)} WHERE ts >= ?"
        )
        args: list[Any] = [since]
        if until is not None:
            sql += " AND ts < ?"
            args.append(until)
        clauses, clause_args = raw_conditions(filters)
        for clause in clauses:
            sql += f" AND {clause}"
        args += clause_args
        if filters.tag is not None:
            sql += f" AND {self.contains('tags', '?')}"
            args.append(needle(filters.tag))
        if by != "all":  # PostgreSQL refuses GROUP BY a constant; one total row needs no grouping
            sql += f" GROUP BY {expression}"
        return sql, tuple(args)

    def _source(self, by: str) -> str:
        """The rows a report reads: by tag, one row per (request, tag), untagged requests once under ''."""
        return f"requests {self.each_tag('tags')}" if by == "tag" else "requests"

    @abc.abstractmethod
    def contains(self, column: str, needle: str) -> str:
        """SQL true when text `column` contains the text `needle` (a placeholder or an expression)."""

    @abc.abstractmethod
    def each_tag(self, column: str) -> str:
        """A join that yields each tag of the JSON array `column` as `t.value` (one NULL row for none)."""

    async def end_user_spend(self, starts: dict[str, float], owner: str = "key_id") -> dict[tuple[str, str], float]:
        """USD spent by each end user of each key (or team: `owner="team_id"`) since its given start."""
        spend: dict[tuple[str, str], float] = {}
        column = _owner(owner)
        for key_id, start in starts.items():
            rows = await self.fetch(
                f"SELECT end_user, SUM(cost_usd) FROM requests WHERE {column} = ? AND ts >= ? "
                "AND end_user IS NOT NULL GROUP BY end_user",
                (key_id, start),
            )
            for end_user, total in rows:
                spend[(key_id, end_user)] = float(total or 0.0)
        return spend

    async def key_spend(self, starts: dict[str, float], owner: str = "key_id") -> dict[str, float]:
        """USD spent by each key (or team: `owner="team_id"`) since its given start (its budget period began)."""
        column = _owner(owner)
        spend = dict.fromkeys(starts, 0.0)
        by_start: dict[float, list[str]] = {}
        for key_id, start in starts.items():
            by_start.setdefault(start, []).append(key_id)
        for start, ids in by_start.items():  # one query per period kind: daily, weekly, monthly, total
            marks = ", ".join("?" * len(ids))
            rows = await self.fetch(
                f"SELECT {column}, SUM(cost_usd) FROM requests WHERE {column} IN ({marks}) AND ts >= ? "
                f"GROUP BY {column}",
                (*ids, start),
            )
            for key_id, total in rows:
                spend[key_id] = float(total or 0.0)
        return spend

    # -- keys --

    async def insert_key(self, key: VirtualKey) -> None:
        await self.execute(_INSERT_KEY, _key_row(key))

    async def save_key(self, key: VirtualKey) -> None:
        await self.execute(_UPDATE_KEY, (*_key_row(key)[1:], key.id))

    async def get_key(self, key_id: str) -> VirtualKey | None:
        rows = await self.fetch(_SELECT_KEYS + " WHERE id = ?", (key_id,))
        return _key(rows[0]) if rows else None

    async def key_by_hash(self, digest: str) -> VirtualKey | None:
        rows = await self.fetch(_SELECT_KEYS + " WHERE hash = ?", (digest,))
        return _key(rows[0]) if rows else None

    async def find_keys(self, id_or_name: str) -> list[VirtualKey]:
        rows = await self.fetch(_SELECT_KEYS + " WHERE id = ? OR name = ?", (id_or_name, id_or_name))
        return [_key(r) for r in rows]

    async def list_keys(self) -> list[VirtualKey]:
        return [_key(r) for r in await self.fetch(_SELECT_KEYS + " ORDER BY created_at")]


async def _no_rows() -> list[Row]:
    return []


def _row_usage(row: Row) -> UsageRow:
    """A usage row as `_rows_query` selects it: the sums with the database's own percentiles."""
    group, requests, errors, prompt, completion, cached, cost, p50, p95, estimated, hits, saved = row
    sums = (requests, errors, prompt, completion, cached, cost, estimated)
    return _usage_fields(group, sums, p50, p95, (hits, saved))


def _owner(column: str) -> str:
    if column not in ("key_id", "team_id"):
        raise ValueError(f"spend is kept per key_id or team_id, not {column!r}")
    return column


def _key_row(key: VirtualKey) -> Row:
    return (
        key.id,
        key.name,
        key.hash,
        key.hint,
        key.created_at,
        key.expires_at,
        key.revoked_at,
        key.budget_usd,
        key.budget_period,
        key.rpm,
        key.tpm,
        msgspec.json.encode(key.models).decode(),
        msgspec.json.encode(key.scopes).decode(),
        msgspec.json.encode(key.tags).decode(),
        msgspec.json.encode(key.end_user_limits.public()).decode() if key.end_user_limits else None,
        key.team_id,
        key.block_free,
        key.alert_at,
    )


def _key(row: Row) -> VirtualKey:
    values = dict(zip(KEY_COLUMNS, row))
    values["models"] = msgspec.json.decode(values["models"])
    values["scopes"] = msgspec.json.decode(values["scopes"])
    values["tags"] = msgspec.json.decode(values["tags"] or "[]")
    limits = values["end_user_limits"]
    values["end_user_limits"] = parse_end_user_limits(msgspec.json.decode(limits)) if limits else None
    values["block_free"] = bool(values["block_free"])
    return VirtualKey(**values)


def _request_dict(row: Row) -> dict[str, Any]:
    record = dict(zip(("id", *REQUEST_COLUMNS), row))
    record["stream"] = bool(record["stream"])
    record["estimated"] = bool(record["estimated"])
    log = record.pop("attempt_log")
    record["failed_attempts"] = msgspec.json.decode(log) if log else []
    return record


def _usage_dict(group: Any, sums: Sequence[Any], latency: dict[int, int], cache: tuple[int, float]) -> UsageRow:
    """A usage row from the rollups' sums and a merged latency histogram."""
    return _usage_fields(group, sums, percentile(latency, 0.5), percentile(latency, 0.95), cache)


def _usage_fields(
    group: Any, sums: Sequence[Any], p50: float | None, p95: float | None, cache: tuple[Any, Any]
) -> UsageRow:
    requests, errors, prompt, completion, cached, cost, estimated = sums
    hits, saved = cache
    return {
        "group": group,
        "requests": int(requests or 0),
        "errors": int(errors or 0),
        "prompt_tokens": int(prompt or 0),
        "completion_tokens": int(completion or 0),
        "total_tokens": int((prompt or 0) + (completion or 0)),
        "cached_tokens": int(cached or 0),
        "cost_usd": round(float(cost or 0.0), 10),
        "p50_latency_ms": None if p50 is None else round(float(p50), 3),
        "p95_latency_ms": None if p95 is None else round(float(p95), 3),
        "estimated": int(estimated or 0),
        "cache_hits": int(hits or 0),  # answered by the response cache
        "saved_usd": round(float(saved or 0.0), 10),  # what those answers cost when first made
    }
