"""The ledger:, logging: and metrics: sections, and server.database_url."""

from __future__ import annotations

from llmmux.config import config_from_dict


def test_every_setting_is_read() -> None:
    config, problems = config_from_dict(
        {
            "ledger": {
                "path": "u.db",
                "flush_interval": 0.5,
                "batch_size": 100,
                "max_pending": 1000,
                "refresh_interval": 2,
            },
            "logging": {"format": "text", "requests": False, "bodies": "debug-*"},
            "metrics": {"enabled": False, "snapshot_interval": 3},
        }
    )
    assert not problems.errors
    ledger = config.ledger
    assert (ledger.path, ledger.flush_interval_s, ledger.batch_size, ledger.max_pending, ledger.refresh_interval_s) == (
        "u.db",
        0.5,
        100,
        1000,
        2.0,
    )
    assert (config.logging.format, config.logging.requests, config.logging.bodies) == ("text", False, ["debug-*"])
    assert (config.metrics.enabled, config.metrics.snapshot_interval_s) == (False, 3.0)


def test_a_database_url_is_a_secret_and_may_sit_under_server() -> None:
    config, problems = config_from_dict({"server": {"database_url": "postgresql://u:pw123456@db/x"}})
    assert not problems.errors and str(config.ledger.database_url) == "postgresql://u:pw123456@db/x"
    assert "pw123456" not in repr(config.ledger.database_url)


def test_mistakes_name_the_key() -> None:
    _, problems = config_from_dict(
        {
            "ledger": {"database_url": "mysql://x", "flush_interval": 0, "batch_size": -1, "colour": 1},
            "logging": {"format": "xml", "bodies": [1]},
            "metrics": {"enabled": "yes"},
        }
    )
    errors = {p.path: p.message for p in problems.errors}
    assert errors == {
        "ledger.database_url": "expected a postgresql://user:password@host:port/database URL",
        "ledger.flush_interval": "expected a positive number of seconds, got 0",
        "ledger.batch_size": "expected a positive integer, got -1",
        "logging.format": "expected one of json, text, got 'xml'",
        "logging.bodies": "expected true, false or a list of public model names or globs",
        "metrics.enabled": "expected true or false, got 'yes'",
    }
    assert [p.path for p in problems if p.severity == "warning"] == ["ledger.colour"]
