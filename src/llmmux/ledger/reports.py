"""The usage report as JSON: what `llmmux usage --json` prints and `GET /admin/usage` returns."""

from __future__ import annotations

from typing import Any

from ..periods import iso
from .rollups import Filters
from .store import Store
from .teamops import list_teams

NO_KEY = "none"
"""What `?key=` and `--key` take for the requests made without a virtual key (master key or no auth)."""


def report_filters(key: str | None, model: str | None, tag: str | None = None) -> Filters:
    return Filters(key_id="" if key == NO_KEY else key, model=model, tag=tag)


async def usage_report(
    store: Store, since: float, until: float | None, by: str, filters: Filters = Filters()
) -> dict[str, Any]:
    """The usage table as JSON: one row per group plus totals; the CLI prints the same.

    `filters` narrows it to one key (`key_id`, "" for requests made without one), one public
    model and/or one tag; the report says which. By tag, a request with two tags counts under
    each, so the rows may add up to more than the totals, which count each request once.
    """
    rows, total = await store.usage_table(since, until, by, filters)
    if by == "key":
        names = {k.id: k.name for k in await store.list_keys()}
        for row in rows:
            row["name"] = names.get(row["group"], "(master key or none)" if not row["group"] else "?")
    if by == "team":
        teams = {t.id: t.name for t in await list_teams(store)}
        for row in rows:
            row["name"] = teams.get(row["group"], "(no team)" if not row["group"] else "(deleted team)")
    total.pop("group", None)
    report: dict[str, Any] = {"since": iso(since), "until": iso(until), "by": by, "rows": rows, "totals": total}
    if filters.key_id is not None:
        report["key"] = filters.key_id or NO_KEY
    if filters.model is not None:
        report["model"] = filters.model
    if filters.tag is not None:
        report["tag"] = filters.tag
    return report
