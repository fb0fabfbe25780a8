"""The response cache: exact and semantic lookups over a memory, SQLite or Redis store.

    cache = open_cache(settings.cache, config_folder)
    found = await cache.lookup(request, policy, record)      # the pipeline does this

See docs/cache.md for the configuration and the request and response headers.
"""

from __future__ import annotations

from pathlib import Path

from ..config.cache_settings import DEFAULT_SQLITE_PATH, CacheConfig, CachePolicy
from .responses import Embed, Hit, Lookup, ResponseCache
from .store import CacheStore, MemoryStore, StoreStats

__all__ = [
    "CacheConfig",
    "CachePolicy",
    "CacheStore",
    "Embed",
    "Hit",
    "Lookup",
    "MemoryStore",
    "ResponseCache",
    "StoreStats",
    "open_cache",
    "open_store",
]


def open_store(config: CacheConfig, folder: Path) -> CacheStore:
    """The store `config` names; a relative SQLite path is beside the config."""
    if config.store == "redis":
        from .redis_store import RedisStore

        assert config.url is not None
        return RedisStore(config.url, config.key_prefix)
    if config.store == "sqlite":
        from .sqlite_store import SQLiteStore

        path = Path(config.path or DEFAULT_SQLITE_PATH)
        return SQLiteStore(path if path.is_absolute() else folder / path)
    return MemoryStore(config.max_bytes)


def open_cache(config: CacheConfig, folder: Path, embed: Embed | None = None) -> ResponseCache:
    return ResponseCache(config, open_store(config, folder), embed)
