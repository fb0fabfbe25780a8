"""Client-side limits per provider: `rate_limit_settings:` and each provider's `max_concurrency`.

rate_limit_settings:
  enabled: true
  queue_size: 100              # requests that may wait for a limit at once
  queue_timeout_seconds: 10    # then 429 with Retry-After
  limits:
    ollama_cloud: {rpm: 60, tpm: 100000, max_concurrency: 4}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config.fields import FieldReader
from ..config.model import ProviderConfig

SECTION = "rate_limit_settings"
DEFAULT_QUEUE_SIZE = 100
DEFAULT_QUEUE_TIMEOUT_S = 10.0
LIMIT_KEYS = ("rpm", "tpm", "max_concurrency")


@dataclass(frozen=True, slots=True)
class ProviderLimits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.max_concurrency))

    def describe(self) -> str:
        parts = [f"{k} {getattr(self, k)}" for k in LIMIT_KEYS if getattr(self, k) is not None]
        return ", ".join(parts) or "none"


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    providers: Mapping[str, ProviderLimits] = field(default_factory=dict)
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S


def parse_limits(section: Any, providers: Mapping[str, ProviderConfig], reader: FieldReader) -> LimitsConfig:
    entry = reader.mapping(SECTION, section) or {}
    reader.unknown(SECTION, entry, ("enabled", "queue_size", "queue_timeout_seconds", "limits"))
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        reader.error(f"{SECTION}.enabled", f"expected true or false, got {enabled!r}")
        enabled = True
    queue_size = _get(reader, entry, "queue_size", lambda p, v: reader.integer(p, v, minimum=0), DEFAULT_QUEUE_SIZE)
    timeout = _get(reader, entry, "queue_timeout_seconds", reader.number, DEFAULT_QUEUE_TIMEOUT_S)
    limits = {
        name: ProviderLimits(max_concurrency=p.max_concurrency)
        for name, p in providers.items()
        if p.max_concurrency is not None
    }
    raw = reader.mapping(f"{SECTION}.limits", entry.get("limits")) or {}
    for name, value in raw.items():
        path = f"{SECTION}.limits.{name}"
        own = reader.mapping(path, value)
        if own is None:
            continue
        if name not in providers:
            reader.warning(path, f"no provider named {name!r}; this limit applies to nothing")
        reader.unknown(path, own, LIMIT_KEYS)
        if enabled:
            limits[str(name)] = _provider_limits(own, path, reader, limits.get(str(name)))
    return LimitsConfig({k: v for k, v in limits.items() if v}, queue_size, timeout)


def _provider_limits(
    own: dict[str, Any], path: str, reader: FieldReader, base: ProviderLimits | None
) -> ProviderLimits:
    values: dict[str, int | None] = {k: getattr(base, k) if base else None for k in LIMIT_KEYS}
    for key in LIMIT_KEYS:
        if own.get(key) is not None:
            parsed = reader.integer(f"{path}.{key}", own[key], minimum=1)
            if parsed is not None:
                values[key] = parsed
    return ProviderLimits(**values)


def _get(reader: FieldReader, entry: dict[str, Any], key: str, read: Any, default: Any) -> Any:
    if entry.get(key) is None:
        return default
    value = read(f"{SECTION}.{key}", entry[key])
    return default if value is None else value
