"""The shared state's connection, from the `state:` section (read by config/sections.py).

Without `state.url`, `llmmux serve --workers N` shares state through its own holder process.
"""

from __future__ import annotations

from ..config.model import StateConfig

__all__ = ["StateConfig", "redis_url"]


def redis_url(state: StateConfig) -> str | None:
    """The URL for the Redis client (valkey:// spelled the way it understands)."""
    if state.url is None:
        return None
    url = str(state.url)
    for valkey, redis in (("valkeys://", "rediss://"), ("valkey://", "redis://")):
        if url.startswith(valkey):
            return redis + url.removeprefix(valkey)
    return url
