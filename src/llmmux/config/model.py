"""Configuration objects, with every default as a module constant.

They mirror the files users already keep (`providers.yaml`, `model-mappings.yaml`) and
hold the parsed, interpolated values; the loader fills them and `validate` checks them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_RETRY_DELAY_MS = 250
MAX_RETRY_AFTER_S = 30.0
ROUTABLE_STATUSES = frozenset({"active", "testing"})
DEFAULT_LEDGER_FILE = "llmmux.db"
# `Config.source` of the config `llmmux serve` builds when there is none: its files go to the data directory.
DISCOVERED_SOURCE = "<discovered>"
DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_FLUSH_BATCH = 500
DEFAULT_MAX_PENDING = 100_000
DEFAULT_REFRESH_INTERVAL_S = 5.0
DEFAULT_SNAPSHOT_INTERVAL_S = 1.0


class Secret(str):
    """A string that never shows itself in reprs, logs or error messages."""

    def __repr__(self) -> str:
        return "Secret('****')" if self else "Secret('')"


def mask(value: str | None) -> str:
    if not value:
        return ""
    return value[:3] + "****" if len(value) > 12 else "****"


@dataclass(slots=True)
class ModelEntry:
    name: str
    size: str | None = None
    context_length: int | None = None
    specialty: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ProviderConfig:
    name: str
    type: str
    base_url: str = ""
    api_key: Secret | None = None
    env_var: str | None = None
    status: str = "active"
    description: str = ""
    features: list[str] = field(default_factory=list)
    models: list[ModelEntry] = field(default_factory=list)
    health_endpoint: str | None = None
    api_format: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S
    read_timeout: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Routing: requests in flight at once, and the stream deadlines (see routing/settings.py).
    max_concurrency: int | None = None
    first_token_timeout: float | None = None
    stall_timeout: float | None = None
    requires_api_key: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def routable(self) -> bool:
        return self.status in ROUTABLE_STATUSES

    def model_names(self) -> list[str]:
        return [m.name for m in self.models]


@dataclass(slots=True)
class ExactRoute:
    public: str
    provider: str
    model: str | None = None
    priority: str | None = None
    fallback: list[str] = field(default_factory=list)
    no_fallback: bool = False
    description: str = ""
    retry_attempts: int = 0
    retry_delay_ms: int = DEFAULT_RETRY_DELAY_MS
    strict: bool = False  # refuse parameters a candidate cannot honour instead of dropping them


@dataclass(slots=True)
class PatternRoute:
    pattern: str
    provider: str
    model: str | None = None
    fallback: list[str] = field(default_factory=list)
    no_fallback: bool = False
    description: str = ""
    strict: bool = False


@dataclass(slots=True)
class FallbackChain:
    name: str
    chain: list[str]
    description: str = ""
    retry_attempts: int = 0
    retry_delay_ms: int = DEFAULT_RETRY_DELAY_MS


@dataclass(slots=True)
class RoutingConfig:
    exact: dict[str, ExactRoute] = field(default_factory=dict)
    patterns: list[PatternRoute] = field(default_factory=list)
    chains: dict[str, FallbackChain] = field(default_factory=dict)
    # Sections consumed by routing strategies, capabilities and health checks; kept as written.
    sections: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    master_key: Secret | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    workers: int = 1


@dataclass(slots=True)
class LedgerConfig:
    """Where request records and virtual keys live, and how often buffered records are written.

    `path` is a SQLite file (relative paths resolve against the config's folder);
    `database_url` (postgresql://...) wins over it. A crash loses at most the records of
    the last `flush_interval_s` plus 0.1 s (the accounting's batching).
    """

    enabled: bool = True
    path: str | None = None
    database_url: Secret | None = None
    flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S
    batch_size: int = DEFAULT_FLUSH_BATCH
    max_pending: int = DEFAULT_MAX_PENDING
    refresh_interval_s: float = DEFAULT_REFRESH_INTERVAL_S


@dataclass(slots=True)
class LoggingConfig:
    """Structured logs: one JSON line per request; bodies only for the public models listed."""

    format: str = "json"
    requests: bool = True
    bodies: list[str] = field(default_factory=list)


@dataclass(slots=True)
class MetricsConfig:
    enabled: bool = True
    snapshot_interval_s: float = DEFAULT_SNAPSHOT_INTERVAL_S


@dataclass(slots=True)
class AlertsConfig:
    """Budget alerts: a log event (and a POST to `webhook_url`) when a key's or team's spend crosses
    `threshold` of its budget, and again when it reaches the whole budget. Set by the admin only."""

    threshold: float = 0.8
    webhook_url: Secret | None = None


@dataclass(slots=True)
class PrivacyConfig:
    """What the gateway keeps of the people behind a key: end-user ids as given, or only their hashes."""

    hash_end_users: bool = False


@dataclass(slots=True)
class TracingConfig:
    """OpenTelemetry spans per request and attempt (needs the `otel` extra)."""

    enabled: bool = False


@dataclass(slots=True)
class Config:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    source: str = "<dict>"
