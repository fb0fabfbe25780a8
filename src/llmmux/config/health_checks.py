"""The `health_checks:` section: global settings, and per-provider overrides by name.

health_checks:
  interval_seconds: 60        # the seeds' defaults
  timeout_seconds: 5
  retry_attempts: 3           # probe attempts in one check before `unavailable`
  cooldown_seconds: 300       # the longest cooldown; the first after failures is
  min_cooldown_seconds: 10    # this long, doubling with each failed trial
  failure_threshold: 3        # request failures in a row that start a cooldown
  vllm:                       # a provider's own settings (or under `providers:`)
    endpoint: http://127.0.0.1:8001/health
    interval_seconds: 30
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .fields import FieldReader

SECTION = "health_checks"

# Defaults from the seeds' health-check system; the rest are what a gateway needs on top.
DEFAULT_INTERVAL_S = 60.0
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRY_ATTEMPTS = 3
DEFAULT_COOLDOWN_S = 300.0
DEFAULT_MIN_COOLDOWN_S = 10.0
DEFAULT_RETRY_DELAY_S = 1.0
DEFAULT_FAILURE_THRESHOLD = 3
DEFAULT_WINDOW_S = 60.0
DEFAULT_MIN_REQUESTS = 10
DEFAULT_DEGRADED_ERROR_RATE = 0.2
DEFAULT_UNHEALTHY_ERROR_RATE = 0.5
DEFAULT_DEGRADED_LATENCY_MS = 3000.0
DEFAULT_TRIAL_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class HealthSettings:
    """How one provider is checked and judged (`health_checks:` globally or per provider)."""

    enabled: bool = True
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    retry_attempts: int = DEFAULT_RETRY_ATTEMPTS
    retry_delay_s: float = DEFAULT_RETRY_DELAY_S
    cooldown_s: float = DEFAULT_COOLDOWN_S
    min_cooldown_s: float = DEFAULT_MIN_COOLDOWN_S
    passive: bool = True  # False: only health checks change the state, never the traffic
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    window_s: float = DEFAULT_WINDOW_S
    min_requests: int = DEFAULT_MIN_REQUESTS
    degraded_error_rate: float = DEFAULT_DEGRADED_ERROR_RATE
    unhealthy_error_rate: float = DEFAULT_UNHEALTHY_ERROR_RATE
    degraded_latency_ms: float | None = DEFAULT_DEGRADED_LATENCY_MS
    trial_timeout_s: float = DEFAULT_TRIAL_TIMEOUT_S
    endpoint: str | None = None


# yaml key -> (HealthSettings field, reader)
_Read = Callable[[FieldReader, str, Any], Any]
_FIELDS: dict[str, tuple[str, _Read]] = {
    "enabled": ("enabled", lambda r, p, v: r.boolean(p, v)),
    "interval_seconds": ("interval_s", lambda r, p, v: r.number(p, v, positive=True)),
    "timeout_seconds": ("timeout_s", lambda r, p, v: r.number(p, v, positive=True)),
    "retry_attempts": ("retry_attempts", lambda r, p, v: r.integer(p, v, minimum=1)),
    "retry_delay_seconds": ("retry_delay_s", lambda r, p, v: r.number(p, v)),
    "cooldown_seconds": ("cooldown_s", lambda r, p, v: r.number(p, v)),
    "min_cooldown_seconds": ("min_cooldown_s", lambda r, p, v: r.number(p, v)),
    "passive": ("passive", lambda r, p, v: r.boolean(p, v)),
    "failure_threshold": ("failure_threshold", lambda r, p, v: r.integer(p, v, minimum=1)),
    "window_seconds": ("window_s", lambda r, p, v: r.number(p, v, positive=True)),
    "min_requests": ("min_requests", lambda r, p, v: r.integer(p, v, minimum=1)),
    "degraded_error_rate": ("degraded_error_rate", lambda r, p, v: r.fraction(p, v)),
    "unhealthy_error_rate": ("unhealthy_error_rate", lambda r, p, v: r.fraction(p, v)),
    "degraded_latency_ms": ("degraded_latency_ms", lambda r, p, v: r.number(p, v, positive=True)),
    "trial_timeout_seconds": ("trial_timeout_s", lambda r, p, v: r.number(p, v, positive=True)),
    "endpoint": ("endpoint", lambda r, p, v: r.string(p, v)),
}


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Settings for every provider: the global ones, overridden per provider."""

    default: HealthSettings = field(default_factory=HealthSettings)
    providers: Mapping[str, HealthSettings] = field(default_factory=dict)

    def for_provider(self, name: str) -> HealthSettings:
        return self.providers.get(name, self.default)


def parse_health(section: Any, providers: Collection[str], reader: FieldReader) -> HealthConfig:
    entry = reader.mapping(SECTION, section)
    if not entry:
        return HealthConfig()
    overrides = dict(entry.get("providers") or {}) if isinstance(entry.get("providers"), dict) else {}
    globals_: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "providers":
            continue
        if key in _FIELDS:
            globals_[key] = value
        elif key in providers or isinstance(value, dict):
            overrides[key] = value
        else:
            reader.warning(f"{SECTION}.{key}", "unknown health check setting, ignored")
    default = _apply(HealthSettings(), globals_, SECTION, reader)
    per_provider: dict[str, HealthSettings] = {}
    for name, raw in overrides.items():
        path = f"{SECTION}.{name}"
        if name not in providers:
            reader.warning(path, f"no provider named {name!r}; these settings apply to nothing")
        own = reader.mapping(path, raw)
        if own is not None:
            reader.unknown(path, own, _FIELDS)
            per_provider[str(name)] = _apply(default, own, path, reader)
    return HealthConfig(default, per_provider)


def _apply(base: HealthSettings, entry: dict[str, Any], path: str, reader: FieldReader) -> HealthSettings:
    changes: dict[str, Any] = {}
    for key, value in entry.items():
        if key not in _FIELDS:
            continue
        name, read = _FIELDS[key]
        if value is None and name in ("degraded_latency_ms", "endpoint"):
            changes[name] = None  # explicitly off
            continue
        parsed = read(reader, f"{path}.{key}", value)
        if parsed is not None:
            changes[name] = parsed
    return replace(base, **changes) if changes else base
