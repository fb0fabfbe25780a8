"""The one place llmmux reads the environment: `${VAR}` interpolation and named lookups.

Everything else asks here (`lookup`, `environment`) or is handed the values, so a test can
pass a mapping instead of patching `os.environ`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
# Macros a managed server's launch command is given when it starts, not variables.
LAUNCH_MACROS = frozenset({"PORT", "MODEL"})


def interpolate(value: Any, env: Mapping[str, str] | None = None, unset: set[str] | None = None) -> Any:
    """Return `value` with variables replaced in every string, recursively.

    Names of variables that were referenced, unset and had no default are added to `unset`,
    so validation can warn about them instead of failing later on an empty key.
    """
    env = environment(env)
    if isinstance(value, str):
        return _interpolate_str(value, env, unset)
    if isinstance(value, dict):
        return {k: interpolate(v, env, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, unset) for v in value]
    return value


def _interpolate_str(text: str, env: Mapping[str, str], unset: set[str] | None) -> str:
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in LAUNCH_MACROS and default is None:
            return match.group(0)
        found = env.get(name)
        if found:
            return found
        if default is not None:
            return default
        if unset is not None:
            unset.add(name)
        return ""

    return _VAR.sub(replace, text)


def environment(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """`env`, or the process environment (e.g. what a launched server inherits)."""
    return os.environ if env is None else env


def lookup(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The variable's value; None when it is unset or empty."""
    return environment(env).get(name) or None
