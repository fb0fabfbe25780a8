"""`llmmux validate` reports each problem with file, key path and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from llmmux.cli import main
from upstreams import FakeOpenAI, closed_port_url

GOOD = """
providers:
  local:
    type: openai_compatible
    base_url: {url}
    models: [m1]
"""


def run(tmp_path: Path, text: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    path = tmp_path / "llmmux.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", "--config", str(path), *args], env=env or {})
    return result.exit_code, result.output


def test_a_good_config_passes(tmp_path: Path) -> None:
    code, output = run(tmp_path, GOOD.format(url="http://127.0.0.1:8000/v1"))
    assert code == 0, output
    assert "1 providers, 0 errors, 0 warnings" in output


@pytest.mark.parametrize(
    ("extra", "path", "expected"),
    [
        (
            "routing:\n  exact_matches:\n    x: {provider: nowhere}\n",
            "routing.exact_matches.x.provider",
            "unknown provider 'nowhere'",
        ),
        (
            "routing:\n  exact_matches:\n    x: {provider: local, fallback: ghost}\n",
            "routing.exact_matches.x.fallback",
            "'ghost' is not a provider",
        ),
        (
            "routing:\n  exact_matches:\n    a: {provider: local, fallback: b}\n    b: {provider: local, fallback: a}\n",
            "routing.exact_matches.a.fallback",
            "fallback cycle: a -> b -> a",
        ),
        (
            "routing:\n  patterns:\n    - {pattern: '^(unclosed', provider: local}\n",
            "routing.patterns[0].pattern",
            "invalid regular expression",
        ),
        (
            "routing:\n  fallback_chains:\n    c: {chain: [local, phantom]}\n",
            "routing.fallback_chains.c.chain[1]",
            "'phantom' is not a provider",
        ),
        (
            "  other:\n    type: openai_compatible\n    base_url: localhost:8000\n",
            "providers.other.base_url",
            "expected an http(s) URL",
        ),
        (
            "  other:\n    type: openai_compatible\n    base_url: http://h\n    models: [{name: a, context_length: big}]\n",
            "providers.other.models[0].context_length",
            "expected a positive integer",
        ),
        ("  local:\n    type: openai_compatible\n    base_url: http://h\n", "line 7", "duplicate key 'local'"),
        (
            "  other:\n    type: openai_compatible\n    base_url: http://h\n    timeout: -1\n",
            "providers.other.timeout",
            "positive number",
        ),
        ("  other:\n    base_url: http://h\n", "providers.other.type", "expected a provider type"),
    ],
    ids=[
        "unknown-provider",
        "unknown-fallback",
        "cycle",
        "regex",
        "chain",
        "url",
        "context",
        "duplicate",
        "timeout",
        "type",
    ],
)
def test_each_error_is_reported_and_fails(tmp_path: Path, extra: str, path: str, expected: str) -> None:
    text = GOOD.format(url="http://127.0.0.1:8000/v1") + extra
    code, output = run(tmp_path, text)
    assert code == 1, output
    line = next((line for line in output.splitlines() if expected in line), None)
    assert line is not None, output
    assert line.startswith("error: ") and f"llmmux.yaml: {path}:" in line


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("  gpt:\n    type: openai\n", "no API key for this cloud provider: set OPENAI_API_KEY"),
        (
            "  g:\n    type: openai_compatible\n    base_url: http://h\n    api_key: ${GROQ_KEY}\n",
            "GROQ_KEY is referenced but not set",
        ),
        ("  c:\n    type: cohere_native\n    base_url: http://h\n", "provider type 'cohere_native' is not supported"),
        (
            "  c:\n    type: openai_compatible\n    base_url: http://h\n    gpu_memory_utilization: 0.9\n",
            "unknown provider key",
        ),
    ],
    ids=["cloud-key", "env-var", "unsupported-type", "unknown-key"],
)
def test_warnings_do_not_fail(tmp_path: Path, extra: str, expected: str) -> None:
    code, output = run(tmp_path, GOOD.format(url="http://127.0.0.1:8000/v1") + extra)
    assert code == 0, output
    assert any(line.startswith("warning: ") and expected in line for line in output.splitlines()), output


def test_env_interpolation_with_defaults(tmp_path: Path) -> None:
    text = GOOD.format(url="${LOCAL_URL:-http://127.0.0.1:9000}/v1")
    code, output = run(
        tmp_path,
        text + "  remote:\n    type: openai\n    api_key: ${OPENAI_API_KEY}\n",
        env={"OPENAI_API_KEY": "sk-test-abcdefghijkl"},
    )
    assert code == 0 and "0 warnings" in output, output


def test_probe_reports_reachability(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        text = GOOD.format(url=up.url) + f"  dead:\n    type: openai_compatible\n    base_url: {closed_port_url()}\n"
        code, output = run(tmp_path, text, "--probe")
    assert code == 1
    assert "probe local: reachable" in output
    assert "probe dead: UNREACHABLE" in output


def test_folder_layout(tmp_path: Path) -> None:
    (tmp_path / "providers.yaml").write_text(GOOD.format(url="http://127.0.0.1:8000/v1"))
    (tmp_path / "model-mappings.yaml").write_text("exact_matches:\n  chat: {provider: local, model: m1}\n")
    result = CliRunner().invoke(main, ["route", "--config", str(tmp_path), "chat"])
    assert result.exit_code == 0, result.output
    assert "1. local  model=m1" in result.output


def test_a_preset_key_in_the_environment_satisfies_validate(tmp_path: Path) -> None:
    text = GOOD.format(url="http://127.0.0.1:8000/v1") + "  cloud:\n    type: ollama_cloud\n"
    code, output = run(tmp_path, text, env={"OLLAMA_API_KEY": "ok-key-0123456789"})
    assert code == 0 and "0 warnings" in output, output
    code, output = run(tmp_path, text, env={})
    assert "set OLLAMA_API_KEY" in output
