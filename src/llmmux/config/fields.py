"""Typed reads out of the raw routing sections, each problem named by its key path.

The loader keeps sections such as `health_checks:` or `rate_limit_settings:` as written;
the module that uses a section parses it with a `FieldReader`, so a wrong value is an
error naming the file, the key and what was expected, and the default is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .problems import Problems


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

    def mapping(self, path: str, value: Any) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        if value is not None:
            self.error(path, f"expected a mapping, got {type(value).__name__}")
        return None

    def number(self, path: str, value: Any, *, positive: bool = False) -> float | None:
        """A non-negative number (strictly positive with `positive`)."""
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (value > 0 or (value == 0 and not positive))
        ):
            return float(value)
        self.error(path, f"expected a {'positive' if positive else 'non-negative'} number, got {value!r}")
        return None

    def integer(self, path: str, value: Any, *, minimum: int = 0) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and value >= minimum:
            return value
        self.error(path, f"expected an integer of at least {minimum}, got {value!r}")
        return None

    def fraction(self, path: str, value: Any) -> float | None:
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
            return float(value)
        self.error(path, f"expected a fraction between 0 and 1, got {value!r}")
        return None

    def boolean(self, path: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.error(path, f"expected true or false, got {value!r}")
        return None

    def string(self, path: str, value: Any) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.error(path, f"expected a non-empty string, got {value!r}")
        return None

    def strings(self, path: str, value: Any) -> list[str] | None:
        """A name or a list of names."""
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value):
            return [str(v) for v in value]
        self.error(path, f"expected a name or a list of names, got {value!r}")
        return None

    def unknown(self, path: str, entry: dict[str, Any], known: Iterable[str]) -> None:
        allowed = set(known)
        for key in entry:
            if key not in allowed:
                self.warning(f"{path}.{key}", f"unknown key, ignored (known: {', '.join(sorted(allowed))})")
