"""Spans of time as users write them (`30d`, `12h`, `2026-01-31`) and budget periods.

Budget periods are calendar periods in UTC: a `monthly` budget resets at 00:00 UTC on the
first of each month, `weekly` on Mondays, `daily` every midnight; `total` never resets.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

BUDGET_PERIODS = ("daily", "weekly", "monthly", "total")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `90s`, `15m`, `12h`, `30d` or `2w`; ValueError otherwise."""
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"expected a duration such as 30m, 12h, 7d or 2w, got {text[:64]!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds == math.inf:  # 400 digits parse as a float, to infinity
        raise ValueError(f"the duration {text[:64]!r} is too long")
    return seconds


def parse_moment(text: str, now: float, *, future: bool) -> float:
    """A duration counted from `now` (forward for expiry, back for `--since`) or an ISO date/time."""
    try:
        span = parse_duration(text)
    except ValueError:
        pass
    else:
        return _representable(now + span if future else now - span, text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expected a duration such as 7d or a date such as 2026-01-31, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _representable(moment.timestamp(), text)


def _representable(moment: float, text: str) -> float:
    """`moment`, if it is a date that can be shown (years 1 to 9999); ValueError otherwise."""
    try:
        datetime.fromtimestamp(moment, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{text!r} is beyond the dates that can be written (years 1 to 9999)") from None
    return moment


def period_start(period: str, now: float) -> float:
    """The epoch second at which the budget period containing `now` began (0 for `total`)."""
    moment = datetime.fromtimestamp(now, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "daily":
        return midnight.timestamp()
    if period == "weekly":
        return (midnight - timedelta(days=midnight.weekday())).timestamp()
    if period == "monthly":
        return midnight.replace(day=1).timestamp()
    if period == "total":
        return 0.0
    raise ValueError(f"unknown budget period {period!r} (known: {', '.join(BUDGET_PERIODS)})")


def period_end(period: str, now: float) -> float | None:
    """When the current period ends and the budget is available again; None for `total`."""
    start = datetime.fromtimestamp(period_start(period, now), UTC)
    if period == "daily":
        return (start + timedelta(days=1)).timestamp()
    if period == "weekly":
        return (start + timedelta(days=7)).timestamp()
    if period == "monthly":
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        return start.replace(year=year, month=month).timestamp()
    return None


def iso(epoch: float | None) -> str | None:
    """An epoch second as ISO 8601 in UTC, to the second."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
