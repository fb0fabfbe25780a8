"""The usage report as JSON: what `llmmux usage --json` prints and `GET /admin/usage` returns."""

from __future__ import annotations

from typing import Any

from ..periods import iso
from .store import Store
from .teamops import list_teams


async def usage_report(
    store: Store, since: float, until: float | None, by: str, tag: str | None = None
) -> dict[str, Any]:
    """The usage table as JSON: one row per group plus totals; the CLI prints the same.

    By tag, a request with two tags counts under each, so the rows may add up to more than
    the totals, which count each request once.
    """
    rows = await store.usage(since, until, by, tag)
    totals = await store.usage(since, until, "all", tag)
    if by == "key":
        names = {k.id: k.name for k in await store.list_keys()}
        for row in rows:
            row["name"] = names.get(row["group"], "(master key or none)" if not row["group"] else "?")
    if by == "team":
        teams = {t.id: t.name for t in await list_teams(store)}
        for row in rows:
            row["name"] = teams.get(row["group"], "(no team)" if not row["group"] else "(deleted team)")
    empty = {
        "requests": 0,
        "errors": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cached_tokens": 0,
        "cost_usd": 0.0,
        "p50_latency_ms": None,
        "p95_latency_ms": None,
        "estimated": 0,
    }
    total = totals[0] if totals else {"group": "all", **empty}
    total.pop("group", None)
    report = {"since": iso(since), "until": iso(until), "by": by, "rows": rows, "totals": total}
    if tag is not None:
        report["tag"] = tag
    return report
