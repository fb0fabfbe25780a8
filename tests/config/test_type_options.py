"""Type-specific provider keys and the `strict` route flag, as the loader and validation read them."""

from __future__ import annotations

from llmmux.config import config_from_dict
from llmmux.loading import check

LOCAL = {"type": "openai_compatible", "base_url": "http://127.0.0.1:8000/v1"}


def warnings_for(config_dict: dict[str, object]) -> list[str]:
    config, problems = config_from_dict(config_dict)
    check(config, problems=problems)
    return [str(p) for p in problems]


def test_a_key_the_type_reads_is_not_called_unknown() -> None:
    assert warnings_for({"providers": {"a": {**LOCAL, "stream_usage": False}}}) == []


def test_a_key_no_type_reads_is_called_unknown_and_kept() -> None:
    config, _ = config_from_dict({"providers": {"a": {**LOCAL, "gpu_layers": 3}}})
    assert config.providers["a"].extra == {"gpu_layers": 3}
    [warning] = warnings_for({"providers": {"a": {**LOCAL, "gpu_layers": 3}}})
    assert "providers.a.gpu_layers" in warning and "unknown provider key for type 'openai_compatible'" in warning


def test_strict_is_read_from_exact_and_pattern_routes() -> None:
    config, problems = config_from_dict(
        {
            "providers": {"a": LOCAL},
            "routing": {
                "exact_matches": {"x": {"provider": "a", "strict": True}},
                "patterns": [{"pattern": "^y", "provider": "a", "strict": True}],
            },
        }
    )
    assert not problems.errors
    assert config.routing.exact["x"].strict and config.routing.patterns[0].strict


def test_strict_must_be_a_boolean() -> None:
    _, problems = config_from_dict(
        {"providers": {"a": LOCAL}, "routing": {"exact_matches": {"x": {"provider": "a", "strict": "yes"}}}}
    )
    assert [str(p) for p in problems.errors] == [
        "error: <dict>: routing.exact_matches.x.strict: expected true or false, got 'yes'"
    ]


def test_the_cloud_example_validates_without_errors_or_unknown_keys() -> None:
    from pathlib import Path

    from llmmux.config import load_config

    example = Path(__file__).parents[2] / "examples" / "cloud" / "llmmux.yaml"
    config, problems = load_config(example, env={})
    check(config, problems=problems)
    assert problems.errors == []
    assert not [p for p in problems if "unknown" in str(p)], [str(p) for p in problems]
    assert config.routing.exact["careful"].strict
