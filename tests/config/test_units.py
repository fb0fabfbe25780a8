"""Durations and sizes as users write them."""

from __future__ import annotations

import pytest

from llmmux.config.units import FOREVER, format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (300, 300.0),
        (0, 0.0),
        ("0", 0.0),
        ("90", 90.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1d", 86400.0),
        (-1, FOREVER),
        ("-1", FOREVER),
        ("-5m", FOREVER),
    ],
)
def test_durations_follow_ollamas_keep_alive(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5 minutes", "m5", True, None, [1]])
def test_bad_durations_say_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1024, 1024),
        ("512", 512),
        ("8GB", 8 * 1024**3),
        ("8GiB", 8 * 1024**3),
        ("8 gb", 8 * 1024**3),
        ("1.5G", int(1.5 * 1024**3)),
        ("512MB", 512 * 1024**2),
        ("64k", 64 * 1024),
    ],
)
def test_sizes_are_binary_like_the_rest_of_the_config(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "8XB", -1, 1.5, "GB"])
def test_bad_sizes_say_what_is_expected(bad: object) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(bad)


def test_formatting_for_status_tables() -> None:
    assert format_size(98_362_432) == "94 MB" and format_size(5 * 1024**2 + 1) == "5.0 MB"
    assert format_size(12 * 1024**3) == "12 GB" and format_size(10) == "10 B"
    assert format_duration(FOREVER) == "forever" and format_duration(59) == "59s"
    assert format_duration(250) == "4m 10s" and format_duration(7300) == "2h 1m"
