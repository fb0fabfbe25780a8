"""The `state:` section: where workers and instances share limits, health and keys.

state:
  url: redis://redis:6379/0        # or rediss://; valkey:// is accepted as redis://
  password: ${REDIS_PASSWORD}      # from the environment, like every secret in the config
  prefix: "llmmux:"                # keys and channels start with this (several gateways, one Redis)
  on_failure: open                 # open: serve with per-instance limits; closed: refuse (503)
  timeout: 0.5                     # seconds one store operation may take before it counts as down

Without `url`, `llmmux serve --workers N` shares state through its own holder process.
"""

from __future__ import annotations

from typing import Any

from ..config.model import Secret, StateConfig
from ..config.problems import Problems

SECTION = "state"
KEYS = frozenset({"url", "password", "prefix", "on_failure", "timeout"})
SCHEMES = ("redis://", "rediss://", "unix://", "valkey://", "valkeys://")
ON_FAILURE = ("open", "closed")

__all__ = ["StateConfig", "parse_state", "redis_url"]


def redis_url(state: StateConfig) -> str | None:
    """The URL for the Redis client (valkey:// spelled the way it understands)."""
    if state.url is None:
        return None
    url = str(state.url)
    for valkey, redis in (("valkeys://", "rediss://"), ("valkey://", "redis://")):
        if url.startswith(valkey):
            return redis + url.removeprefix(valkey)
    return url


def parse_state(file: str, value: Any, state: StateConfig, problems: Problems) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        problems.error(file, SECTION, f"expected a mapping, got {type(value).__name__}")
        return
    for key in value:
        if key not in KEYS:
            problems.warning(file, f"{SECTION}.{key}", f"unknown key, ignored (known: {', '.join(sorted(KEYS))})")
    url = value.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.startswith(SCHEMES):
            problems.error(file, f"{SECTION}.url", "expected a redis://, rediss:// or valkey:// URL")
        else:
            state.url = Secret(url)
    password = value.get("password")
    if password:  # an unset ${VAR} is empty: the loader has already warned about it
        state.password = Secret(str(password))
    prefix = value.get("prefix")
    if prefix is not None:
        if isinstance(prefix, str) and prefix and len(prefix) <= 64:
            state.prefix = prefix
        else:
            problems.error(file, f"{SECTION}.prefix", "expected a non-empty string of at most 64 characters")
    on_failure = value.get("on_failure")
    if on_failure is not None:
        if on_failure in ON_FAILURE:
            state.on_failure = on_failure
        else:
            problems.error(file, f"{SECTION}.on_failure", f"expected open or closed, got {on_failure!r}")
    timeout = value.get("timeout")
    if timeout is not None:
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and 0 < timeout <= 10:
            state.timeout_s = float(timeout)
        else:
            problems.error(file, f"{SECTION}.timeout", f"expected seconds between 0 and 10, got {timeout!r}")
