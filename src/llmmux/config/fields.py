"""The one set of typed readers for config values, each problem named by file and key path.

Every section of the config is read with a `FieldReader`: a wrong value is reported as an
error naming the file, the key path and what was expected, the reader returns None, and
the caller keeps its default. So one bad key never hides the others, and `llmmux validate`
lists them all.

>>> problems = Problems()
>>> reader = FieldReader("llmmux.yaml", problems)
>>> reader.field({"timeout": 5}, "server", "timeout", reader.seconds, 600.0)
5.0
>>> reader.field({"workers": "two"}, "server", "workers", reader.integer, 1)
1
>>> str(problems[0])
"error: llmmux.yaml: server.workers: expected a non-negative integer, got 'two'"
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .problems import Problems
from .units import parse_duration, parse_size

T = TypeVar("T")
D = TypeVar("D")
Read = Callable[[str, Any], T | None]


class FieldReader:
    """`reader.number("health_checks.timeout_seconds", raw)` -> a float, or None after reporting."""

    __slots__ = ("problems", "source")

    def __init__(self, source: str, problems: Problems) -> None:
        self.source = source
        self.problems = problems

    def error(self, path: str, message: str) -> None:
        self.problems.error(self.source, path, message)

    def warning(self, path: str, message: str) -> None:
        self.problems.warning(self.source, path, message)

    def field(self, entry: Mapping[str, Any], path: str, key: str, read: Read[T], default: D) -> T | D:
        """`entry[key]` read by `read`; `default` when it is absent, null or wrong."""
        value = entry.get(key)
        if value is None:
            return default
        got = read(f"{path}.{key}" if path else key, value)
        return default if got is None else got

    # -- containers --

    def mapping(self, path: str, value: Any) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        if value is not None:
            self.error(path, f"expected a mapping, got {type(value).__name__}")
        return None

    def section(self, path: str, value: Any, known: Iterable[str]) -> dict[str, Any]:
        """A section's mapping ({} when absent or wrong), with unknown keys warned about."""
        entry = self.mapping(path, value) or {}
        self.unknown(path, entry, known)
        return entry

    def unknown(self, path: str, entry: Mapping[str, Any], known: Iterable[str], *, kept: bool = False) -> None:
        """Warn about keys nobody reads; `kept`: they stay in the config for a later reader."""
        allowed = set(known)
        for key in entry:
            if key not in allowed:
                what = "kept but not used" if kept else f"ignored (known: {', '.join(sorted(allowed))})"
                self.warning(f"{path}.{key}" if path else str(key), f"unknown key, {what}")

    def strings(self, path: str, value: Any) -> list[str] | None:
        """A name or a list of names."""
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
            return [str(v) for v in value]
        self.error(path, f"expected a name or a list of names, got {value!r}")
        return None

    # -- scalars --

    def boolean(self, path: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.error(path, f"expected true or false, got {value!r}")
        return None

    def number(self, path: str, value: Any, *, positive: bool = False) -> float | None:
        """A non-negative number (strictly positive with `positive`)."""
        if _is_number(value) and math.isfinite(value) and (value > 0 or (value == 0 and not positive)):
            return float(value)
        self.error(path, f"expected a {'positive' if positive else 'non-negative'} number, got {value!r}")
        return None

    def seconds(self, path: str, value: Any) -> float | None:
        """A positive number of seconds."""
        if _is_number(value) and math.isfinite(value) and value > 0:
            return float(value)
        self.error(path, f"expected a positive number of seconds, got {value!r}")
        return None

    def rate(self, path: str, value: Any) -> float | None:
        """A positive number of tokens per second."""
        if _is_number(value) and math.isfinite(value) and value > 0:
            return float(value)
        self.error(path, f"expected a positive number of tokens per second, got {value!r}")
        return None

    def integer(self, path: str, value: Any, *, minimum: int = 0) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        self.error(path, f"expected {_integer_phrase(minimum)}, got {value!r}")
        return None

    def positive_integer(self, path: str, value: Any) -> int | None:
        return self.integer(path, value, minimum=1)

    def at_least(self, minimum: int) -> Read[int]:
        """`integer` with a minimum, as a reader for `field`."""
        return lambda path, value: self.integer(path, value, minimum=minimum)

    def fraction(self, path: str, value: Any) -> float | None:
        if _is_number(value) and 0 <= value <= 1:
            return float(value)
        self.error(path, f"expected a fraction between 0 and 1, got {value!r}")
        return None

    def string(self, path: str, value: Any) -> str | None:
        """A non-empty string."""
        if isinstance(value, str) and value:
            return value
        self.error(path, f"expected a non-empty string, got {value!r}")
        return None

    def text(self, path: str, value: Any) -> str | None:
        """A string as YAML may write it: `version: 2` or `port: 8080` are read as text too."""
        if isinstance(value, str):
            return value
        if _is_number(value):
            return str(value)
        self.error(path, f"expected a string, got {type(value).__name__}")
        return None

    def choice(self, path: str, value: Any, choices: Iterable[str]) -> str | None:
        options = tuple(choices)
        if isinstance(value, str) and value in options:
            return value
        self.error(path, f"expected one of {', '.join(options)}, got {value!r}")
        return None

    def one_of(self, choices: Iterable[str]) -> Read[str]:
        """`choice` as a reader for `field`: `reader.field(entry, path, "format", reader.one_of(FORMATS), "json")`."""
        options = tuple(choices)
        return lambda path, value: self.choice(path, value, options)

    def duration(self, path: str, value: Any) -> float | None:
        """Positive seconds, as a number or a duration such as 10s, 2m or 1h30m."""
        try:
            seconds = parse_duration(value)
        except ValueError:
            seconds = 0.0
        if 0 < seconds < math.inf:
            return seconds
        self.error(path, f"expected a positive duration such as 10s or 2m, got {value!r}")
        return None

    def lifetime(self, path: str, value: Any) -> float | None:
        """Seconds or a duration, where any negative value means forever (Ollama's keep_alive)."""
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def size(self, path: str, value: Any) -> int | None:
        """Bytes, as a number or a size such as 32MB or 8GiB (binary units however spelled)."""
        try:
            return parse_size(value.replace(" ", "") if isinstance(value, str) else value)
        except ValueError:
            self.error(path, f"expected a size such as 32MB or a number of bytes, got {value!r}")
            return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer_phrase(minimum: int) -> str:
    if minimum == 0:
        return "a non-negative integer"
    if minimum == 1:
        return "a positive integer"
    return f"an integer of at least {minimum}"
