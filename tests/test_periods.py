"""Durations, dates and calendar budget periods (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmmux.periods import iso, parse_duration, parse_moment, period_end, period_start

T = datetime(2026, 12, 16, 15, 30, tzinfo=UTC).timestamp()  # a Wednesday


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90s", "15m", "12h", "30d", "2w", "1.5h")] == [
        90,
        900,
        43200,
        2592000,
        1209600,
        5400,
    ]
    with pytest.raises(ValueError, match="expected a duration such as 30m"):
        parse_duration("soon")


def test_moments_are_durations_from_now_or_dates() -> None:
    assert parse_moment("1d", T, future=True) == T + 86400
    assert parse_moment("1d", T, future=False) == T - 86400
    assert iso(parse_moment("2027-01-31", T, future=True)) == "2027-01-31T00:00:00Z"
    with pytest.raises(ValueError, match="or a date such as"):
        parse_moment("next week", T, future=True)


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("daily", "2026-12-16T00:00:00Z", "2026-12-17T00:00:00Z"),
        ("weekly", "2026-12-14T00:00:00Z", "2026-12-21T00:00:00Z"),
        ("monthly", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ],
)
def test_calendar_periods(period: str, start: str, end: str) -> None:
    assert iso(period_start(period, T)) == start
    assert iso(period_end(period, T)) == end


def test_total_has_no_end() -> None:
    assert period_start("total", T) == 0.0 and period_end("total", T) is None
