"""The shared state's connection, from the `state:` section (read by config/sections.py).

Without `state.url`, `llmmux serve --workers N` shares state through its own holder process.
"""

from __future__ import annotations

from ..config.model import StateConfig

__all__ = ["StateConfig", "client_url", "redis_url"]


def redis_url(state: StateConfig) -> str | None:
    """The URL for the Redis client (valkey:// spelled the way it understands)."""
    return None if state.url is None else client_url(str(state.url))


def client_url(url: str) -> str:
    """valkey:// and valkeys:// as redis-py spells them (the same protocol)."""
    for valkey, redis in (("valkeys://", "rediss://"), ("valkey://", "redis://")):
        if url.startswith(valkey):
            return redis + url.removeprefix(valkey)
    return url
