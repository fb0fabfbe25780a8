"""Configuration objects, with every default as a module constant.

They mirror the files users already keep (`providers.yaml`, `model-mappings.yaml`) and
hold the parsed, interpolated values; the loader fills them and `validate` checks them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .launch import LaunchSpec
from .routing_settings import RoutingSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
# Hostile-client limits of `llmmux serve` (server/connections.py); docs/security.md explains each.
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_SEND_TIMEOUT_S = 60.0
DEFAULT_KEEP_ALIVE_TIMEOUT_S = 75.0
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 256
DEFAULT_MAX_N = 16
DEFAULT_MAX_CHOICES = 64
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
DEFAULT_UI_PATH = "/ui"
DEFAULT_SESSION_TTL_S = 8 * 3600.0
DEFAULT_LOGIN_FREE_TRIES = 5
DEFAULT_LOGIN_BACKOFF_S = 1.0
DEFAULT_LOGIN_MAX_BACKOFF_S = 900.0
DEFAULT_LOGIN_GLOBAL_PER_MINUTE = 60
DEFAULT_BODY_MAX_BYTES = 64 * 1024
DEFAULT_BODY_MAX_AGE_S = 7 * 86400.0
DEFAULT_BODY_MAX_TOTAL_BYTES = 1024**3


class Secret(str):
    """A string that never shows itself in reprs, logs or error messages."""

    def __repr__(self) -> str:
        return "Secret('****')" if self else "Secret('')"


def mask(value: str | None) -> str:
    if not value:
        return ""
    return value[:3] + "****" if len(value) > 12 else "****"


class TypedOptions:
    """The base of what a provider type reads from its entry's own keys, as typed fields.

    config/ cannot know the provider types, so `ProviderConfig.options` holds this base;
    `llmmux.loading` has each entry read once by its type (`Provider.read_options`) and the
    provider built from the entry takes them from there.
    """

    __slots__ = ()


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
    # Routing: requests in flight at once, and the stream deadlines (see config/routing_settings.py).
    max_concurrency: int | None = None
    first_token_timeout: float | None = None
    first_token_timeout_max: float | None = None  # local models: the cap on a prompt-scaled first-token wait
    prompt_tokens_per_second: float | None = None  # local models: the prompt speed assumed until measured
    stall_timeout: float | None = None
    requires_api_key: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # `launch:`: a server llmmux runs itself (config/launch.py), read when the entry is parsed.
    launch: LaunchSpec | None = None
    # The type's own keys of `extra`, read once by validation (see `TypedOptions`); None until then.
    options: TypedOptions | None = None

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
    pass_unchecked_params: bool = False  # let values outside the usual ranges through (llmmux.param_values)


@dataclass(slots=True)
class PatternRoute:
    pattern: str
    provider: str
    model: str | None = None
    fallback: list[str] = field(default_factory=list)
    no_fallback: bool = False
    description: str = ""
    strict: bool = False
    pass_unchecked_params: bool = False


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
    # The routing sections (strategies, groups, size bands, health checks, limits, cache, tag
    # routes), parsed once when the config loads; routing, health, limits and the cache read them.
    settings: RoutingSettings = field(default_factory=RoutingSettings)


@dataclass(slots=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    master_key: Secret | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    workers: int = 1
    # A whole request head must arrive within header_timeout_s of the connection (or of
    # its first byte on a kept-alive one); body_timeout_s and send_timeout_s bound the
    # silences while a body is read or a response waits for the client to read it.
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S
    keep_alive_timeout_s: float = DEFAULT_KEEP_ALIVE_TIMEOUT_S
    # Open connections from one client address, counted in each worker process; 0: no cap.
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    # One request may ask for this many choices (`n`), and a completions request for this many
    # prompts x n: each is an upstream generation, so a cap keeps one request from becoming thousands.
    max_n: int = DEFAULT_MAX_N
    max_choices: int = DEFAULT_MAX_CHOICES


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
class BodyStoreConfig:
    """Where logged prompts and replies go besides the log line: a table beside the ledger.

    `redact` holds extra regexes (the built-in masking of keys and tokens always applies);
    `max_bytes` caps each stored body; `max_age_s` and `max_total_bytes` bound the table.
    """

    enabled: bool = True
    max_bytes: int = DEFAULT_BODY_MAX_BYTES
    redact: list[str] = field(default_factory=list)
    max_age_s: float = DEFAULT_BODY_MAX_AGE_S
    max_total_bytes: int = DEFAULT_BODY_MAX_TOTAL_BYTES


@dataclass(slots=True)
class LoggingConfig:
    """Structured logs: one JSON line per request; bodies only for the public models listed ("*": all)."""

    format: str = "json"
    requests: bool = True
    bodies: list[str] = field(default_factory=list)
    body_store: BodyStoreConfig = field(default_factory=BodyStoreConfig)


@dataclass(slots=True)
class LoginLimits:
    """`ui.login`: failed console logins allowed per client address before each further one doubles
    a lockout (from `backoff_s` up to `max_backoff_s`), and from all addresses together per minute."""

    free_tries: int = DEFAULT_LOGIN_FREE_TRIES
    backoff_s: float = DEFAULT_LOGIN_BACKOFF_S
    max_backoff_s: float = DEFAULT_LOGIN_MAX_BACKOFF_S
    global_per_minute: int = DEFAULT_LOGIN_GLOBAL_PER_MINUTE


@dataclass(slots=True)
class UIConfig:
    """The operator console: served at `path` unless `enabled` is false; sessions last `session_ttl_s`."""

    enabled: bool = True
    path: str = DEFAULT_UI_PATH
    session_ttl_s: float = DEFAULT_SESSION_TTL_S
    login: LoginLimits = field(default_factory=LoginLimits)


@dataclass(slots=True)
class MetricsConfig:
    enabled: bool = True
    public: bool = False  # with a master key set, /metrics needs it (or a metrics-scoped key) unless true
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
class StateConfig:
    """Where workers and instances share limits, health and keys (`state:`; see config/sections.py)."""

    url: Secret | None = None  # redis://, rediss://, valkey://; None: one box (the holder process)
    password: Secret | None = None
    prefix: str = "llmmux:"
    on_failure: str = "open"  # or "closed": refuse while the store is out of reach
    timeout_s: float = 0.5

    def client_url(self) -> str | None:
        """`url` as the Redis client spells it (valkey:// and valkeys:// become redis:// and rediss://)."""
        return None if self.url is None else redis_client_url(str(self.url))


def redis_client_url(url: str) -> str:
    """valkey:// and valkeys:// as redis-py spells them (the same protocol)."""
    for valkey, redis in (("valkeys://", "rediss://"), ("valkey://", "redis://")):
        if url.startswith(valkey):
            return redis + url.removeprefix(valkey)
    return url


@dataclass(slots=True)
class Config:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    state: StateConfig = field(default_factory=StateConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    source: str = "<dict>"
    # The file each entry came from, by key path ("providers.loc", "exact_matches.fast",
    # "capabilities"): a config folder spreads entries over several files, and a problem
    # found after parsing (by validation or a provider type) names the file, not the folder.
    origins: dict[str, str] = field(default_factory=dict)
    # How an entry's key path is written in its file, where that differs from the key path
    # validation knows it by: "exact_matches.fast" may sit under `routing:` in llmmux.yaml, and
    # "patterns[3]" is the second pattern of the second file that has any.
    spellings: dict[str, str] = field(default_factory=dict)

    def record_origin(self, path: str, file: str, written: str) -> None:
        """Entry `path` came from `file`, where its key path is `written`."""
        self.origins[path] = file
        if written != path:
            self.spellings[path] = written

    def locate(self, path: str) -> tuple[str, str]:
        """The file key path `path` came from, and the key path as written there.

        >>> config = Config(source="conf")
        >>> config.record_origin("patterns[2]", "conf/llmmux.yaml", "routing.patterns[0]")
        >>> config.locate("patterns[2].fallback")
        ('conf/llmmux.yaml', 'routing.patterns[0].fallback')
        """
        key = path
        while key:
            found = self.origins.get(key)
            if found is not None:
                written = self.spellings.get(key)
                return found, path if written is None else written + path[len(key) :]
            key = key[: max(key.rfind("."), key.rfind("["), 0)]
        return self.source, path

    def with_providers(self, providers: dict[str, ProviderConfig]) -> Config:
        """This config with other providers (the library's `add_provider`): the routing settings
        that depend on them (each provider's own `max_concurrency`) follow."""
        routing = dataclasses.replace(self.routing, settings=self.routing.settings.with_providers(providers))
        return dataclasses.replace(self, providers=providers, routing=routing)
