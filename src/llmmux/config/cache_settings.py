"""Cache settings: per route (`routing_strategy.routes.<name>.cache`) and the store (`cache:`).

    routing_strategy:
      cache: {mode: exact, ttl: 3600}           # every route (the default policy)
      routes:
        chat-main:
          cache: {mode: exact, ttl: 600, scope: key, max_entry_bytes: 1048576}
        faq:
          cache: {mode: semantic, threshold: 0.93, embedding: embed-small}
        agent: {cache: false}
    cache:
      store: memory                             # memory (default) | sqlite | redis
      max_bytes: 268435456                      # memory: the LRU's bound, in bytes
      path: ./llmmux-cache.db                   # sqlite
      url: redis://127.0.0.1:6379/0             # redis (default: state.url when set)
      allow_bypass: true                        # or false, or [key names or ids]

Read once, when the config loads, into the frozen objects below.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from .fields import FieldReader

SECTION = "cache"
MODES = ("exact", "semantic")
SCOPES = ("key", "global")
STORES = ("memory", "sqlite", "redis")
DEFAULT_TTL_S = 3600.0
DEFAULT_THRESHOLD = 0.95
DEFAULT_MAX_ENTRY_BYTES = 1 << 20
DEFAULT_MAX_BYTES = 256 << 20
DEFAULT_SQLITE_PATH = "llmmux-cache.db"
DEFAULT_KEY_PREFIX = "llmmux:cache:"
POLICY_FIELDS = (
    "mode",
    "ttl",
    "threshold",
    "max_entry_bytes",
    "scope",
    "embedding",
    "include_user",
    "cache_tool_calls",
    "cache_refusals",
)
STORE_FIELDS = ("store", "max_bytes", "path", "url", "allow_bypass", "key_prefix")


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """How one route caches: which lookup, how long, how big, whose namespace."""

    mode: str = "exact"
    ttl_s: float = DEFAULT_TTL_S
    threshold: float = DEFAULT_THRESHOLD  # semantic: the least cosine similarity that is a hit
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    scope: str = "key"  # key: each virtual key sees only its own answers
    embedding: str | None = None  # semantic: the public model that embeds prompts
    include_user: bool = False  # `user` is metadata unless a route's answers depend on it
    cache_tool_calls: bool = False  # a tool-call turn may have side effects the client expects to repeat
    cache_refusals: bool = False

    @property
    def semantic(self) -> bool:
        return self.mode == "semantic"


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Where entries live and who may bypass the cache."""

    store: str = "memory"
    max_bytes: int = DEFAULT_MAX_BYTES
    path: str | None = None
    url: str | None = None
    key_prefix: str = DEFAULT_KEY_PREFIX
    allow_bypass: bool | frozenset[str] = True  # True: anyone; a set: these key names or ids

    def may_bypass(self, key_id: str | None, key_name: str | None) -> bool:
        if isinstance(self.allow_bypass, bool):
            return self.allow_bypass
        return (key_id is not None and key_id in self.allow_bypass) or (
            key_name is not None and key_name in self.allow_bypass
        )


def parse_policy(value: Any, path: str, reader: FieldReader) -> CachePolicy | None:
    """A route's `cache:`; `false` or `null` turns caching off, `true` takes the defaults."""
    if value is None or value is False:
        return None
    if value is True:
        return CachePolicy()
    if isinstance(value, str):
        value = {"mode": value}
    entry = reader.mapping(path, value)
    if entry is None:
        return None
    reader.unknown(path, entry, POLICY_FIELDS)
    fields: dict[str, Any] = {}
    mode = _choice(entry, "mode", MODES, path, reader)
    if mode is not None:
        fields["mode"] = mode
    scope = _choice(entry, "scope", SCOPES, path, reader)
    if scope is not None:
        fields["scope"] = scope
    if entry.get("ttl") is not None:
        ttl = reader.number(f"{path}.ttl", entry["ttl"], positive=True)
        if ttl is not None:
            fields["ttl_s"] = ttl
    if entry.get("threshold") is not None:
        threshold = reader.fraction(f"{path}.threshold", entry["threshold"])
        if threshold is not None:
            fields["threshold"] = threshold
    if entry.get("max_entry_bytes") is not None:
        size = reader.integer(f"{path}.max_entry_bytes", entry["max_entry_bytes"], minimum=1)
        if size is not None:
            fields["max_entry_bytes"] = size
    if entry.get("embedding") is not None:
        fields["embedding"] = reader.string(f"{path}.embedding", entry["embedding"])
    for flag in ("include_user", "cache_tool_calls", "cache_refusals"):
        if entry.get(flag) is not None:
            fields[flag] = bool(reader.boolean(f"{path}.{flag}", entry[flag]))
    policy = CachePolicy(**fields)
    if policy.semantic and not policy.embedding:
        reader.error(f"{path}.embedding", "a semantic cache needs an embedding model (a public model name)")
        return None
    if policy.semantic and importlib.util.find_spec("numpy") is None:
        reader.error(f"{path}.mode", "a semantic cache needs numpy: pip install 'llmmux[semantic]'")
        return None
    return policy


def parse_config(value: Any, state_url: str | None, reader: FieldReader) -> CacheConfig:
    """The top-level `cache:` section; a Redis store without a url uses `state.url`."""
    entry = reader.mapping(SECTION, value) if value is not None else {}
    if entry is None:
        return CacheConfig()
    reader.unknown(SECTION, entry, STORE_FIELDS)
    store = _choice(entry, "store", STORES, SECTION, reader) or "memory"
    max_bytes = DEFAULT_MAX_BYTES
    if entry.get("max_bytes") is not None:
        max_bytes = reader.integer(f"{SECTION}.max_bytes", entry["max_bytes"], minimum=1) or max_bytes
    url = reader.string(f"{SECTION}.url", entry["url"]) if entry.get("url") is not None else state_url
    if store == "redis" and not url:
        reader.error(f"{SECTION}.url", "a redis store needs a url (redis://host:port/db), here or in state.url")
        store = "memory"
    path = reader.string(f"{SECTION}.path", entry["path"]) if entry.get("path") is not None else None
    prefix = str(entry.get("key_prefix") or DEFAULT_KEY_PREFIX)
    return CacheConfig(store, max_bytes, path, url, prefix, _bypass(entry.get("allow_bypass"), reader))


def _bypass(value: Any, reader: FieldReader) -> bool | frozenset[str]:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    names = reader.strings(f"{SECTION}.allow_bypass", value)
    return frozenset(names) if names is not None else True


def _choice(entry: dict[str, Any], key: str, choices: tuple[str, ...], path: str, reader: FieldReader) -> str | None:
    if entry.get(key) is None:
        return None
    value = str(entry[key]).strip().lower()
    if value not in choices:
        reader.error(f"{path}.{key}", f"expected one of {', '.join(choices)}, got {entry[key]!r}")
        return None
    return value
