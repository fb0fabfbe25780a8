"""The health_checks section: seed defaults, global settings, per-provider overrides, errors."""

from __future__ import annotations

from llmmux.config.fields import FieldReader
from llmmux.config.problems import Problems
from llmmux.health import HealthSettings, parse_health


def parse(section: object, providers: tuple[str, ...] = ("vllm", "ollama")):  # type: ignore[no-untyped-def]
    problems = Problems()
    return parse_health(section, providers, FieldReader("cfg.yaml", problems)), problems


def test_seed_defaults() -> None:
    settings = HealthSettings()
    assert (settings.interval_s, settings.timeout_s, settings.retry_attempts, settings.cooldown_s) == (60, 5, 3, 300)


def test_seed_000_section_and_per_provider_overrides_inherit_globals() -> None:
    config, problems = parse(
        {
            "interval_seconds": 30,
            "timeout_seconds": 2,
            "retry_attempts": 2,
            "cooldown_seconds": 120,
            "vllm": {"endpoint": "http://127.0.0.1:8001/health", "interval_seconds": 10},
            "providers": {"ollama": {"cooldown_seconds": 5}},
        }
    )
    assert not problems
    assert config.default.interval_s == 30 and config.default.cooldown_s == 120
    vllm = config.for_provider("vllm")
    assert (vllm.endpoint, vllm.interval_s, vllm.timeout_s, vllm.cooldown_s) == (
        "http://127.0.0.1:8001/health",
        10,
        2,
        120,
    )
    assert config.for_provider("ollama").cooldown_s == 5
    assert config.for_provider("other") is config.default


def test_bad_values_are_errors_with_key_paths_and_keep_defaults() -> None:
    config, problems = parse(
        {
            "interval_seconds": -1,
            "degraded_error_rate": 2,
            "vllm": {"retry_attempts": 0},
            "frequency": 3,
            "ghost": {"interval_seconds": 1},
        }
    )
    paths = {(p.severity, p.path) for p in problems}
    assert ("error", "health_checks.interval_seconds") in paths
    assert ("error", "health_checks.degraded_error_rate") in paths
    assert ("error", "health_checks.vllm.retry_attempts") in paths
    assert ("warning", "health_checks.frequency") in paths
    assert ("warning", "health_checks.ghost") in paths
    assert config.default.interval_s == 60
    assert config.for_provider("vllm").retry_attempts == 3


def test_latency_threshold_can_be_switched_off() -> None:
    config, problems = parse({"degraded_latency_ms": None})
    assert not problems and config.default.degraded_latency_ms is None
