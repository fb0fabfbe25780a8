"""The `ledger:`, `logging:` and `metrics:` sections: accounting and observability settings.

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
"""

from __future__ import annotations

import re
from typing import Any

from ..local.units import parse_duration, parse_size
from .model import (
    BodyStoreConfig,
    Config,
    LedgerConfig,
    LoggingConfig,
    LoginLimits,
    MetricsConfig,
    Secret,
    TracingConfig,
    UIConfig,
)
from .problems import Problems

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
SECTIONS = frozenset({"ledger", "logging", "metrics", "state", "tracing", "ui", "privacy", "alerts"})
ALERTS_KEYS = frozenset({"threshold", "webhook_url"})
PRIVACY_KEYS = frozenset({"hash_end_users"})
TRACING_KEYS = frozenset({"enabled"})


def parse_ledger(file: str, value: Any, ledger: LedgerConfig, problems: Problems) -> None:
    entry = _mapping(file, "ledger", value, problems, LEDGER_KEYS)
    if "enabled" in entry:
        ledger.enabled = _flag(file, "ledger.enabled", entry["enabled"], problems, ledger.enabled)
    if entry.get("path") is not None:
        ledger.path = str(entry["path"])
    if entry.get("database_url"):
        set_database_url(file, "ledger.database_url", entry["database_url"], ledger, problems)
    ledger.flush_interval_s = _seconds(
        file, "ledger.flush_interval", entry, "flush_interval", ledger.flush_interval_s, problems
    )
    ledger.refresh_interval_s = _seconds(
        file, "ledger.refresh_interval", entry, "refresh_interval", ledger.refresh_interval_s, problems
    )
    ledger.batch_size = _positive_int(file, "ledger.batch_size", entry.get("batch_size"), ledger.batch_size, problems)
    ledger.max_pending = _positive_int(
        file, "ledger.max_pending", entry.get("max_pending"), ledger.max_pending, problems
    )


def set_database_url(file: str, path: str, value: Any, ledger: LedgerConfig, problems: Problems) -> None:
    url = str(value)
    if not url.startswith(POSTGRES_SCHEMES):
        problems.error(file, path, "expected a postgresql://user:password@host:port/database URL")
        return
    ledger.database_url = Secret(url)


def parse_logging(file: str, value: Any, logging: LoggingConfig, problems: Problems) -> None:
    entry = _mapping(file, "logging", value, problems, LOGGING_KEYS)
    if entry.get("format") is not None:
        if entry["format"] in LOG_FORMATS:
            logging.format = entry["format"]
        else:
            problems.error(file, "logging.format", f"expected one of {', '.join(LOG_FORMATS)}, got {entry['format']!r}")
    if "requests" in entry:
        logging.requests = _flag(file, "logging.requests", entry["requests"], problems, logging.requests)
    bodies = entry.get("bodies")
    if isinstance(bodies, bool):
        bodies = ["*"] if bodies else []
    if isinstance(bodies, str):
        bodies = [bodies]
    if bodies is not None:
        if isinstance(bodies, list) and all(isinstance(b, str) for b in bodies):
            logging.bodies = list(bodies)
        else:
            problems.error(file, "logging.bodies", "expected true, false or a list of public model names or globs")
    if "body_store" in entry:
        parse_body_store(file, entry["body_store"], logging.body_store, problems)


def parse_body_store(file: str, value: Any, store: BodyStoreConfig, problems: Problems) -> None:
    entry = _mapping(file, "logging.body_store", value, problems, BODY_STORE_KEYS)
    path = "logging.body_store"
    if "enabled" in entry:
        store.enabled = _flag(file, f"{path}.enabled", entry["enabled"], problems, store.enabled)
    for key, attribute, parse in (
        ("max_bytes", "max_bytes", parse_size),
        ("max_total", "max_total_bytes", parse_size),
        ("max_age", "max_age_s", parse_duration),
    ):
        if entry.get(key) is not None:
            try:
                setattr(store, attribute, parse(entry[key]))
            except ValueError as exc:
                problems.error(file, f"{path}.{key}", str(exc))
    redact = entry.get("redact")
    if redact is not None:
        if not isinstance(redact, list) or not all(isinstance(r, str) for r in redact):
            problems.error(file, f"{path}.redact", "expected a list of regular expressions")
            return
        for i, pattern in enumerate(redact):
            try:
                re.compile(pattern)
            except re.error as exc:
                problems.error(file, f"{path}.redact[{i}]", f"not a valid regular expression: {exc}")
                return
        store.redact = list(redact)


def parse_ui(file: str, value: Any, ui: UIConfig, problems: Problems) -> None:
    if isinstance(value, bool):  # `ui: false`
        ui.enabled = value
        return
    entry = _mapping(file, "ui", value, problems, UI_KEYS)
    if "enabled" in entry:
        ui.enabled = _flag(file, "ui.enabled", entry["enabled"], problems, ui.enabled)
    path = entry.get("path")
    if path is not None:
        text = str(path).rstrip("/")
        if not text.startswith("/") or text in ("", "/v1", "/api", "/admin", "/health") or not text[1:].isascii():
            problems.error(file, "ui.path", f"expected a path such as /ui that no API uses, got {path!r}")
        else:
            ui.path = text
    if entry.get("session_ttl") is not None:
        try:
            ui.session_ttl_s = parse_duration(entry["session_ttl"])
        except ValueError as exc:
            problems.error(file, "ui.session_ttl", str(exc))
    if entry.get("login") is not None:
        _parse_login(file, entry["login"], ui.login, problems)


def _parse_login(file: str, value: Any, login: LoginLimits, problems: Problems) -> None:
    entry = _mapping(file, "ui.login", value, problems, LOGIN_KEYS)
    login.free_tries = _positive_int(file, "ui.login.free_tries", entry.get("free_tries"), login.free_tries, problems)
    login.global_per_minute = _positive_int(
        file, "ui.login.global_per_minute", entry.get("global_per_minute"), login.global_per_minute, problems
    )
    for key in ("backoff", "max_backoff"):
        if entry.get(key) is None:
            continue
        try:
            seconds = parse_duration(entry[key])
        except ValueError as exc:
            problems.error(file, f"ui.login.{key}", str(exc))
            continue
        if not 0 < seconds < float("inf"):
            problems.error(file, f"ui.login.{key}", f"expected a positive duration such as 1s, got {entry[key]!r}")
        else:
            setattr(login, f"{key}_s", seconds)
    if login.max_backoff_s < login.backoff_s:
        problems.error(file, "ui.login.max_backoff", "expected at least ui.login.backoff")


def parse_metrics(file: str, value: Any, metrics: MetricsConfig, problems: Problems) -> None:
    entry = _mapping(file, "metrics", value, problems, METRICS_KEYS)
    if "enabled" in entry:
        metrics.enabled = _flag(file, "metrics.enabled", entry["enabled"], problems, metrics.enabled)
    if "public" in entry:
        metrics.public = _flag(file, "metrics.public", entry["public"], problems, metrics.public)
    metrics.snapshot_interval_s = _seconds(
        file, "metrics.snapshot_interval", entry, "snapshot_interval", metrics.snapshot_interval_s, problems
    )


def parse_section(file: str, key: str, value: Any, config: Config, problems: Problems) -> None:
    """Parse one of `SECTIONS` into its part of `config`."""
    if key == "ledger":
        parse_ledger(file, value, config.ledger, problems)
    elif key == "logging":
        parse_logging(file, value, config.logging, problems)
    elif key == "metrics":
        parse_metrics(file, value, config.metrics, problems)
    elif key == "ui":
        parse_ui(file, value, config.ui, problems)
    elif key == "state":
        from ..shared.settings import parse_state  # the shared package's own section

        parse_state(file, value, config.state, problems)
    elif key == "alerts":
        parse_alerts(file, value, config, problems)
    elif key == "privacy":
        entry = _mapping(file, "privacy", value, problems, PRIVACY_KEYS)
        if "hash_end_users" in entry:
            config.privacy.hash_end_users = _flag(
                file, "privacy.hash_end_users", entry["hash_end_users"], problems, config.privacy.hash_end_users
            )
    else:
        parse_tracing(file, value, config.tracing, problems)


def parse_alerts(file: str, value: Any, config: Config, problems: Problems) -> None:
    entry = _mapping(file, "alerts", value, problems, ALERTS_KEYS)
    threshold = entry.get("threshold")
    if threshold is not None:
        if isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 < threshold <= 1:
            config.alerts.threshold = float(threshold)
        else:
            problems.error(file, "alerts.threshold", f"expected a fraction of the budget in (0, 1], got {threshold!r}")
    url = entry.get("webhook_url")
    if url is not None:
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            config.alerts.webhook_url = Secret(url)  # it may carry a token: never logged
        else:
            problems.error(file, "alerts.webhook_url", "expected an http:// or https:// URL")


def parse_tracing(file: str, value: Any, tracing: TracingConfig, problems: Problems) -> None:
    entry = _mapping(file, "tracing", value, problems, TRACING_KEYS)
    if "enabled" in entry:
        tracing.enabled = _flag(file, "tracing.enabled", entry["enabled"], problems, tracing.enabled)


def _mapping(file: str, path: str, value: Any, problems: Problems, known: frozenset[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.error(file, path, f"expected a mapping, got {type(value).__name__}")
        return {}
    for key in value:
        if key not in known:
            problems.warning(file, f"{path}.{key}", f"unknown key, ignored (known: {', '.join(sorted(known))})")
    return value


def _flag(file: str, path: str, value: Any, problems: Problems, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    problems.error(file, path, f"expected true or false, got {value!r}")
    return default


def _seconds(file: str, path: str, entry: dict[str, Any], key: str, default: float, problems: Problems) -> float:
    value = entry.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        problems.error(file, path, f"expected a positive number of seconds, got {value!r}")
        return default
    return float(value)


def _positive_int(file: str, path: str, value: Any, default: int, problems: Problems) -> int:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    problems.error(file, path, f"expected a positive integer, got {value!r}")
    return default
