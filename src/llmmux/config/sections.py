"""The gateway-wide sections: accounting, observability, the console, alerts, privacy and shared state.

ledger:
  path: ./llmmux.db                 # SQLite (default: llmmux.db beside the config)
  database_url: postgresql://...    # PostgreSQL instead; also accepted as server.database_url
  flush_interval: 1.0               # seconds between batched writes
logging:
  format: json                      # or text
  requests: true                    # one line per request
  bodies: [chat-debug, "local/*"]   # public models whose prompts and replies are logged (true: all)
  body_store:                       # ...and stored beside the ledger for the console's search
    max_bytes: 64KB                 # per body; longer ones are cut
    redact: ["\\b\\d{16}\\b"]         # regexes masked on top of the built-in key/token rules
    max_age: 7d                     # retention, enforced in the background
    max_total: 1GB
metrics:
  enabled: true
  public: false                     # true: /metrics answers without a key even with a master key set
tracing:
  enabled: true                     # OpenTelemetry spans (pip install 'llmmux[otel]')
ui:
  enabled: true                     # the operator console (false: no /ui at all)
  path: /ui
  session_ttl: 8h
  login:                            # failed logins: 5 free per address, then 1s, 2s, 4s... up to 15m
    free_tries: 5
    backoff: 1s
    max_backoff: 15m
    global_per_minute: 60           # from all addresses together, then everyone waits the same way
alerts:
  threshold: 0.8                    # log (and POST) when a budget is 80% spent, and when it is all spent
  webhook_url: https://hooks.example.com/llmmux
privacy:
  hash_end_users: true              # keep only a SHA-256 of end-user ids, never the ids
state:                              # where workers and instances share limits, health and keys
  url: redis://redis:6379/0         # or rediss://; valkey:// is accepted as redis://
  password: ${REDIS_PASSWORD}
  prefix: "llmmux:"                 # keys and channels start with this (several gateways, one Redis)
  on_failure: open                  # open: serve with per-instance limits; closed: refuse (503)
  timeout: 0.5                      # seconds one store operation may take before it counts as down
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .fields import FieldReader
from .model import (
    AlertsConfig,
    BodyStoreConfig,
    Config,
    LedgerConfig,
    LoggingConfig,
    LoginLimits,
    MetricsConfig,
    PrivacyConfig,
    Secret,
    StateConfig,
    TracingConfig,
    UIConfig,
)

LEDGER_KEYS = frozenset(
    ["enabled", "path", "database_url", "flush_interval", "batch_size", "max_pending", "refresh_interval"]
)
LOGGING_KEYS = frozenset(["format", "requests", "bodies", "body_store"])
BODY_STORE_KEYS = frozenset(["enabled", "max_bytes", "redact", "max_age", "max_total"])
UI_KEYS = frozenset(["enabled", "path", "session_ttl", "login"])
LOGIN_KEYS = frozenset(["free_tries", "backoff", "max_backoff", "global_per_minute"])
METRICS_KEYS = frozenset(["enabled", "snapshot_interval", "public"])
LOG_FORMATS = ("json", "text")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
ALERTS_KEYS = frozenset({"threshold", "webhook_url"})
PRIVACY_KEYS = frozenset({"hash_end_users"})
TRACING_KEYS = frozenset({"enabled"})
STATE_KEYS = frozenset({"url", "password", "prefix", "on_failure", "timeout"})
STATE_SCHEMES = ("redis://", "rediss://", "unix://", "valkey://", "valkeys://")
STATE_ON_FAILURE = ("open", "closed")
RESERVED_UI_PATHS = ("", "/v1", "/api", "/admin", "/health")


def parse_ledger(reader: FieldReader, value: Any, ledger: LedgerConfig) -> None:
    entry = reader.section("ledger", value, LEDGER_KEYS)
    ledger.enabled = reader.field(entry, "ledger", "enabled", reader.boolean, ledger.enabled)
    if entry.get("path") is not None:
        ledger.path = str(entry["path"])
    if entry.get("database_url"):
        set_database_url(reader, "ledger.database_url", entry["database_url"], ledger)
    ledger.flush_interval_s = reader.field(entry, "ledger", "flush_interval", reader.seconds, ledger.flush_interval_s)
    ledger.refresh_interval_s = reader.field(
        entry, "ledger", "refresh_interval", reader.seconds, ledger.refresh_interval_s
    )
    ledger.batch_size = reader.field(entry, "ledger", "batch_size", reader.positive_integer, ledger.batch_size)
    ledger.max_pending = reader.field(entry, "ledger", "max_pending", reader.positive_integer, ledger.max_pending)


def set_database_url(reader: FieldReader, path: str, value: Any, ledger: LedgerConfig) -> None:
    url = str(value)
    if not url.startswith(POSTGRES_SCHEMES):
        reader.error(path, "expected a postgresql://user:password@host:port/database URL")
        return
    ledger.database_url = Secret(url)


def parse_logging(reader: FieldReader, value: Any, logging: LoggingConfig) -> None:
    entry = reader.section("logging", value, LOGGING_KEYS)
    logging.format = reader.field(entry, "logging", "format", reader.one_of(LOG_FORMATS), logging.format)
    logging.requests = reader.field(entry, "logging", "requests", reader.boolean, logging.requests)
    bodies = entry.get("bodies")
    if isinstance(bodies, bool):
        bodies = ["*"] if bodies else []
    if isinstance(bodies, str):
        bodies = [bodies]
    if bodies is not None:
        if isinstance(bodies, list) and all(isinstance(b, str) for b in bodies):
            logging.bodies = list(bodies)
        else:
            reader.error("logging.bodies", "expected true, false or a list of public model names or globs")
    if "body_store" in entry:
        parse_body_store(reader, entry["body_store"], logging.body_store)


def parse_body_store(reader: FieldReader, value: Any, store: BodyStoreConfig) -> None:
    path = "logging.body_store"
    entry = reader.section(path, value, BODY_STORE_KEYS)
    store.enabled = reader.field(entry, path, "enabled", reader.boolean, store.enabled)
    store.max_bytes = reader.field(entry, path, "max_bytes", reader.size, store.max_bytes)
    store.max_total_bytes = reader.field(entry, path, "max_total", reader.size, store.max_total_bytes)
    store.max_age_s = reader.field(entry, path, "max_age", reader.lifetime, store.max_age_s)
    redact = entry.get("redact")
    if redact is None:
        return
    if not isinstance(redact, list) or not all(isinstance(r, str) for r in redact):
        reader.error(f"{path}.redact", "expected a list of regular expressions")
        return
    for i, pattern in enumerate(redact):
        try:
            re.compile(pattern)
        except re.error as exc:
            reader.error(f"{path}.redact[{i}]", f"not a valid regular expression: {exc}")
            return
    store.redact = list(redact)


def parse_ui(reader: FieldReader, value: Any, ui: UIConfig) -> None:
    if isinstance(value, bool):  # `ui: false`
        ui.enabled = value
        return
    entry = reader.section("ui", value, UI_KEYS)
    ui.enabled = reader.field(entry, "ui", "enabled", reader.boolean, ui.enabled)
    path = entry.get("path")
    if path is not None:
        text = str(path).rstrip("/")
        if not text.startswith("/") or text in RESERVED_UI_PATHS or not text[1:].isascii():
            reader.error("ui.path", f"expected a path such as /ui that no API uses, got {path!r}")
        else:
            ui.path = text
    ui.session_ttl_s = reader.field(entry, "ui", "session_ttl", reader.lifetime, ui.session_ttl_s)
    if entry.get("login") is not None:
        _parse_login(reader, entry["login"], ui.login)


def _parse_login(reader: FieldReader, value: Any, login: LoginLimits) -> None:
    entry = reader.section("ui.login", value, LOGIN_KEYS)
    login.free_tries = reader.field(entry, "ui.login", "free_tries", reader.positive_integer, login.free_tries)
    login.global_per_minute = reader.field(
        entry, "ui.login", "global_per_minute", reader.positive_integer, login.global_per_minute
    )
    login.backoff_s = reader.field(entry, "ui.login", "backoff", reader.duration, login.backoff_s)
    login.max_backoff_s = reader.field(entry, "ui.login", "max_backoff", reader.duration, login.max_backoff_s)
    if login.max_backoff_s < login.backoff_s:
        reader.error("ui.login.max_backoff", "expected at least ui.login.backoff")


def parse_metrics(reader: FieldReader, value: Any, metrics: MetricsConfig) -> None:
    entry = reader.section("metrics", value, METRICS_KEYS)
    metrics.enabled = reader.field(entry, "metrics", "enabled", reader.boolean, metrics.enabled)
    metrics.public = reader.field(entry, "metrics", "public", reader.boolean, metrics.public)
    metrics.snapshot_interval_s = reader.field(
        entry, "metrics", "snapshot_interval", reader.seconds, metrics.snapshot_interval_s
    )


def parse_alerts(reader: FieldReader, value: Any, alerts: AlertsConfig) -> None:
    entry = reader.section("alerts", value, ALERTS_KEYS)
    threshold = entry.get("threshold")
    if threshold is not None:
        if isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 < threshold <= 1:
            alerts.threshold = float(threshold)
        else:
            reader.error("alerts.threshold", f"expected a fraction of the budget in (0, 1], got {threshold!r}")
    url = entry.get("webhook_url")
    if url is not None:
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            alerts.webhook_url = Secret(url)  # it may carry a token: never logged
        else:
            reader.error("alerts.webhook_url", "expected an http:// or https:// URL")


def parse_privacy(reader: FieldReader, value: Any, privacy: PrivacyConfig) -> None:
    entry = reader.section("privacy", value, PRIVACY_KEYS)
    privacy.hash_end_users = reader.field(entry, "privacy", "hash_end_users", reader.boolean, privacy.hash_end_users)


def parse_tracing(reader: FieldReader, value: Any, tracing: TracingConfig) -> None:
    entry = reader.section("tracing", value, TRACING_KEYS)
    tracing.enabled = reader.field(entry, "tracing", "enabled", reader.boolean, tracing.enabled)


def parse_state(reader: FieldReader, value: Any, state: StateConfig) -> None:
    entry = reader.section("state", value, STATE_KEYS)
    url = entry.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.startswith(STATE_SCHEMES):
            reader.error("state.url", "expected a redis://, rediss:// or valkey:// URL")
        else:
            state.url = Secret(url)
    password = entry.get("password")
    if password:  # an unset ${VAR} is empty: the loader has already warned about it
        state.password = Secret(str(password))
    prefix = entry.get("prefix")
    if prefix is not None:
        if isinstance(prefix, str) and prefix and len(prefix) <= 64:
            state.prefix = prefix
        else:
            reader.error("state.prefix", "expected a non-empty string of at most 64 characters")
    state.on_failure = reader.field(entry, "state", "on_failure", reader.one_of(STATE_ON_FAILURE), state.on_failure)
    timeout = entry.get("timeout")
    if timeout is not None:
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and 0 < timeout <= 10:
            state.timeout_s = float(timeout)
        else:
            reader.error("state.timeout", f"expected seconds between 0 and 10, got {timeout!r}")


_PARSERS: dict[str, Callable[[FieldReader, Any, Config], None]] = {
    "ledger": lambda r, v, c: parse_ledger(r, v, c.ledger),
    "logging": lambda r, v, c: parse_logging(r, v, c.logging),
    "metrics": lambda r, v, c: parse_metrics(r, v, c.metrics),
    "ui": lambda r, v, c: parse_ui(r, v, c.ui),
    "state": lambda r, v, c: parse_state(r, v, c.state),
    "alerts": lambda r, v, c: parse_alerts(r, v, c.alerts),
    "privacy": lambda r, v, c: parse_privacy(r, v, c.privacy),
    "tracing": lambda r, v, c: parse_tracing(r, v, c.tracing),
}
SECTIONS = frozenset(_PARSERS)


def parse_section(reader: FieldReader, key: str, value: Any, config: Config) -> None:
    """Parse one of `SECTIONS` into its part of `config`."""
    _PARSERS[key](reader, value, config)
