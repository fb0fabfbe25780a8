"""The ledger database, whatever engine holds it: request rows, virtual keys and reports.

The SQL is written once with `?` placeholders; an engine module supplies how to run it
(SQLite in a thread, PostgreSQL over asyncpg) and the few expressions that differ.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import msgspec

from ..enduser import parse_end_user_limits
from ..keys import VirtualKey
from ..tags import needle
from .schema import KEY_COLUMNS, MIGRATIONS, REQUEST_COLUMNS, Migration

Row = tuple[Any, ...]

REPORT_GROUPS = ("model", "provider", "key", "day", "upstream", "tag", "user", "team")
PAGE_LIMIT_MAX = 1000

INSERT_REQUESTS_PREFIX = f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES "
_INSERT_REQUEST = (
    INSERT_REQUESTS_PREFIX + f"({', '.join('?' * len(REQUEST_COLUMNS))}) "
    "ON CONFLICT (request_id) DO NOTHING"  # a batch retried after a lost commit reply is written once
)
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
    def percentile(self, expression: str, fraction: float) -> str:
        """SQL for the `fraction` percentile (linear interpolation) of `expression`, NULLs ignored."""

    @abc.abstractmethod
    def day(self, expression: str) -> str:
        """SQL for the UTC date (YYYY-MM-DD) of an epoch-seconds `expression`."""

    async def schema_version(self) -> int:
        rows = await self.fetch("SELECT MAX(version) FROM llmmux_schema")
        return int(rows[0][0] or 0)

    # -- requests --

    async def insert_requests(self, rows: Sequence[Row]) -> None:
        if rows:
            await self.executemany(_INSERT_REQUEST, rows)

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
    ) -> list[dict[str, Any]]:
        """The newest records first; pass the last row's `id` as `before` for the next page."""
        where, args = [], []
        for clause, value in (("id < ?", before), ("key_id = ?", key_id), ("public_model = ?", model)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if errors:
            where.append("status >= 400")
        sql = f"SELECT id, {', '.join(REQUEST_COLUMNS)} FROM requests"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        rows = await self.fetch(sql, (*args, max(1, min(limit, PAGE_LIMIT_MAX))))
        return [_request_dict(row) for row in rows]

    async def usage(
        self, since: float, until: float | None = None, by: str = "model", tag: str | None = None
    ) -> list[dict[str, Any]]:
        """Totals per group since `since`: requests, errors, tokens, cost, p50/p95 latency of successes.

        `by="tag"` counts a request once under each of its tags; `tag` keeps only requests carrying it.
        """
        group = self._group(by)
        ok_latency = "CASE WHEN status < 400 THEN latency_ms END"
        sql = (
            f"SELECT {group} AS grp, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
            "SUM(prompt_tokens), SUM(completion_tokens), SUM(cached_tokens), SUM(cost_usd), "
            f"{self.percentile(ok_latency, 0.5)}, {self.percentile(ok_latency, 0.95)}, "
            f"SUM(CASE WHEN estimated THEN 1 ELSE 0 END) FROM {self._source(by)} WHERE ts >= ?"
        )
        args: list[Any] = [since]
        if until is not None:
            sql += " AND ts < ?"
            args.append(until)
        if tag is not None:
            sql += f" AND {self.contains('tags', '?')}"
            args.append(needle(tag))
        if by != "all":  # PostgreSQL refuses GROUP BY a constant; one total row needs no grouping
            sql += f" GROUP BY {group} ORDER BY {'grp' if by == 'day' else '7 DESC, 2 DESC'}"
        return [_usage_dict(row) for row in await self.fetch(sql, tuple(args))]

    def _group(self, by: str) -> str:
        if by == "model":
            return "public_model"
        if by == "provider":
            return "COALESCE(provider, '')"
        if by == "key":
            return "COALESCE(key_id, '')"
        if by == "day":
            return self.day("ts")
        if by == "all":
            return "'all'"
        if by == "upstream":
            return "COALESCE(provider, '') || '/' || COALESCE(model, '')"
        if by == "tag":
            return "COALESCE(t.value, '')"
        if by == "user":
            return "COALESCE(end_user, '')"
        if by == "team":
            return "COALESCE(team_id, '')"
        raise ValueError(f"cannot group by {by!r} (choose from {', '.join(REPORT_GROUPS)})")

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
        msgspec.json.encode(key.tags).decode(),
        msgspec.json.encode(key.end_user_limits.public()).decode() if key.end_user_limits else None,
        key.team_id,
        key.block_free,
    )


def _key(row: Row) -> VirtualKey:
    values = dict(zip(KEY_COLUMNS, row))
    values["models"] = msgspec.json.decode(values["models"])
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


def _usage_dict(row: Row) -> dict[str, Any]:
    group, requests, errors, prompt, completion, cached, cost, p50, p95, estimated = row
    return {
        "group": group,
        "requests": int(requests),
        "errors": int(errors or 0),
        "prompt_tokens": int(prompt or 0),
        "completion_tokens": int(completion or 0),
        "total_tokens": int((prompt or 0) + (completion or 0)),
        "cached_tokens": int(cached or 0),
        "cost_usd": round(float(cost or 0.0), 10),
        "p50_latency_ms": None if p50 is None else round(float(p50), 3),
        "p95_latency_ms": None if p95 is None else round(float(p95), 3),
        "estimated": int(estimated or 0),
    }
