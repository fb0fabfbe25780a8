"""The shared state's connection, from the `state:` section (read by config/sections.py).

Without `state.url`, `llmmux serve --workers N` shares state through its own holder process.
"""

from __future__ import annotations

from ..config.model import StateConfig
from ..config.model import redis_client_url as client_url

__all__ = ["StateConfig", "client_url", "redis_url"]


def redis_url(state: StateConfig) -> str | None:
    """The URL for the Redis client (valkey:// spelled the way it understands)."""
    return state.client_url()
