"""Durations and sizes as users write them in the config: `5m`, `1h30m`, `300`, `-1`; `8GB`, `512MiB`."""

from __future__ import annotations

import math
import re

FOREVER = math.inf
"""A keep-alive that never expires (Ollama: any negative duration)."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$")


def parse_duration(value: object) -> float:
    """Seconds from a number or a Go-style duration; negative means forever.

    Ollama's keep_alive semantics: `0` unloads at once, any negative value (`-1`, `"-1m"`)
    keeps the model loaded until it is unloaded explicitly.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 5m or 300, got {value!r}")
    if isinstance(value, int | float):
        return FOREVER if value < 0 else float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 5m or 300, got {value!r}")
    text = value.strip().lower()
    if text.startswith("-"):
        return FOREVER
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"expected a duration such as 30s, 5m, 1h30m or a number of seconds, got {value!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def parse_size(value: object) -> int:
    """Bytes from a number or a size such as `8GB`, `8GiB`, `512M`.

    Units are binary whichever way they are spelled, as in the rest of llmmux's config
    (`max_body_size`): memory budgets are compared with binary quantities.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value.strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a size such as 8GB, 512MB or a number of bytes, got {value!r}")
    number, prefix = match.groups()
    return int(float(number) * 1024 ** ("_kmgt".index(prefix or "_")))


def format_size(size: int) -> str:
    """`1.2 GB`, `96 MB`: for status tables."""
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}" if size < 10 * scale else f"{size / scale:.0f} {unit}"
    return f"{size} B"


def format_duration(seconds: float) -> str:
    """`4m 10s`, `forever`: for status tables."""
    if seconds == FOREVER:
        return "forever"
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"
