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
    entry = reader.section(SECTION, section, ("enabled", "queue_size", "queue_timeout_seconds", "limits"))
    enabled = reader.field(entry, SECTION, "enabled", reader.boolean, True)
    queue_size = reader.field(entry, SECTION, "queue_size", reader.integer, DEFAULT_QUEUE_SIZE)
    timeout = reader.field(entry, SECTION, "queue_timeout_seconds", reader.number, DEFAULT_QUEUE_TIMEOUT_S)
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
    return ProviderLimits(
        **{
            key: reader.field(own, path, key, reader.positive_integer, getattr(base, key) if base else None)
            for key in LIMIT_KEYS
        }
    )
