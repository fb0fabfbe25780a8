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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .fields import FieldReader

if TYPE_CHECKING:
    from .model import ProviderConfig

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
    """`providers`: each provider's limits, its own `max_concurrency` under what the section sets.

    `declared` keeps the section's own entries so the limits can be worked out again for
    another set of providers (`with_providers`: the library's `add_provider`)."""

    providers: Mapping[str, ProviderLimits] = field(default_factory=dict)
    queue_size: int = DEFAULT_QUEUE_SIZE
    queue_timeout_s: float = DEFAULT_QUEUE_TIMEOUT_S
    declared: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    enabled: bool = True

    def with_providers(self, providers: Mapping[str, ProviderConfig]) -> LimitsConfig:
        """These settings over `providers`' own `max_concurrency`."""
        merged = {
            name: ProviderLimits(max_concurrency=p.max_concurrency)
            for name, p in providers.items()
            if p.max_concurrency is not None
        }
        if self.enabled:
            for name, own in self.declared.items():
                base = merged.get(name, ProviderLimits())
                merged[name] = ProviderLimits(**{key: own.get(key, getattr(base, key)) for key in LIMIT_KEYS})
        return replace(self, providers={k: v for k, v in merged.items() if v})


def parse_limits(section: Any, providers: Mapping[str, ProviderConfig], reader: FieldReader) -> LimitsConfig:
    entry = reader.section(SECTION, section, ("enabled", "queue_size", "queue_timeout_seconds", "limits"))
    declared: dict[str, dict[str, int]] = {}
    for name, value in (reader.mapping(f"{SECTION}.limits", entry.get("limits")) or {}).items():
        path = f"{SECTION}.limits.{name}"
        own = reader.mapping(path, value)
        if own is None:
            continue
        if name not in providers:
            reader.warning(path, f"no provider named {name!r}; this limit applies to nothing")
        reader.unknown(path, own, LIMIT_KEYS)
        declared[str(name)] = {
            key: read for key in LIMIT_KEYS if (read := reader.field(own, path, key, reader.positive_integer, None))
        }
    limits = LimitsConfig(
        queue_size=reader.field(entry, SECTION, "queue_size", reader.integer, DEFAULT_QUEUE_SIZE),
        queue_timeout_s=reader.field(entry, SECTION, "queue_timeout_seconds", reader.number, DEFAULT_QUEUE_TIMEOUT_S),
        declared=declared,
        enabled=reader.field(entry, SECTION, "enabled", reader.boolean, True),
    )
    return limits.with_providers(providers)
