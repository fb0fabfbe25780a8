"""The `ledger:`, `logging:` and `metrics:` sections: accounting and observability settings.

ledger:
  path: ./llmmux.db                 # SQLite (default: llmmux.db beside the config)
  database_url: postgresql://...    # PostgreSQL instead; also accepted as server.database_url
  flush_interval: 1.0               # seconds between batched writes
logging:
  format: json                      # or text
  requests: true                    # one line per request
  bodies: [chat-debug, "local/*"]   # public models whose prompts and replies are logged
metrics:
  enabled: true
tracing:
  enabled: true                     # OpenTelemetry spans (pip install 'llmmux[otel]')
alerts:
  threshold: 0.8                    # log (and POST) when a budget is 80% spent, and when it is all spent
  webhook_url: https://hooks.example.com/llmmux
privacy:
  hash_end_users: true              # keep only a SHA-256 of end-user ids, never the ids
"""

from __future__ import annotations

from typing import Any

from .model import (
    Config,
    LedgerConfig,
    LoggingConfig,
    MetricsConfig,
    Secret,
    TracingConfig,
)
from .problems import Problems

LEDGER_KEYS = frozenset(
    ["enabled", "path", "database_url", "flush_interval", "batch_size", "max_pending", "refresh_interval"]
)
LOGGING_KEYS = frozenset(["format", "requests", "bodies"])
METRICS_KEYS = frozenset(["enabled", "snapshot_interval"])
LOG_FORMATS = ("json", "text")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SECTIONS = frozenset({"ledger", "logging", "metrics", "tracing", "privacy", "alerts"})
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
    if isinstance(bodies, str):
        bodies = [bodies]
    if bodies is not None:
        if isinstance(bodies, list) and all(isinstance(b, str) for b in bodies):
            logging.bodies = list(bodies)
        else:
            problems.error(file, "logging.bodies", "expected a list of public model names or glob patterns")


def parse_metrics(file: str, value: Any, metrics: MetricsConfig, problems: Problems) -> None:
    entry = _mapping(file, "metrics", value, problems, METRICS_KEYS)
    if "enabled" in entry:
        metrics.enabled = _flag(file, "metrics.enabled", entry["enabled"], problems, metrics.enabled)
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
