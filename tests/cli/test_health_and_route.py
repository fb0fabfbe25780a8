"""`llmmux health` (probing directly or live from a gateway) and `llmmux route` explaining each step."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from llmmux.cli import main
from support import Gateway
from upstreams import FakeOpenAI, closed_port_url, status

CONFIG = """
providers:
  local:
    type: openai_compatible
    base_url: {url}
    models:
      - {{name: llama3.1:8b, context_length: 8192, quality_rank: 2}}
      - {{name: qwen2.5-coder:7b, context_length: 32768}}
  dead:
    type: openai_compatible
    base_url: {dead}
    models: [llama3.1:8b]
  cloud:
    type: openai_compatible
    base_url: https://api.cloud.example/v1
    models:
      - {{name: big-model, context_length: 200000, quality_rank: 1, pricing: {{input: 3, output: 15}}}}
routing:
  exact_matches:
    chat: {{provider: local, model: llama3.1:8b, fallback: [dead, big-model]}}
capabilities:
  code: {{preferred_models: [qwen2.5-coder:7b, big-model]}}
health_checks: {{timeout_seconds: 1, retry_attempts: 1}}
"""


def write(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "llmmux.yaml"
    path.write_text(CONFIG.format(url=url, dead=closed_port_url()))
    return path


def test_health_probes_each_provider_and_fails_when_one_is_down(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        result = CliRunner().invoke(main, ["health", "--config", str(write(tmp_path, up.url))])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["PROVIDER", "STATE", "PROBE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["local"].split()[1:3] == ["active", "ok"]
    assert rows["dead"].split()[1] == "unavailable" and "health check failed 1 time(s)" in rows["dead"]


def test_health_json(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        up.script(status(503), path="/v1/models")
        result = CliRunner().invoke(main, ["health", "--json", "--config", str(write(tmp_path, up.url))])
    report = json.loads(result.output)
    states = {row["name"]: row["state"] for row in report["providers"]}
    assert states["local"] == "unavailable" and report["providers"][0]["last_probe"]["status"] == 503


def test_health_live_from_a_running_gateway(tmp_path: Path) -> None:
    with (
        FakeOpenAI() as up,
        Gateway({"providers": {"p": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]}}}) as gw,
    ):
        result = CliRunner().invoke(main, ["health", "--url", gw.url])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:3] == ["p", "active", "-"]
    assert up.requests == []  # the live view does not probe


def test_health_reports_an_unreachable_gateway() -> None:
    result = CliRunner().invoke(main, ["health", "--url", closed_port_url("")])
    assert result.exit_code == 2 and "cannot reach" in result.output


def test_route_explains_capability_hint_and_context(tmp_path: Path) -> None:
    path = str(write(tmp_path, "http://127.0.0.1:9/v1"))
    code = CliRunner().invoke(
        main, ["route", "--config", path, "auto", "--capability", "code", "--prompt-tokens", "20000"]
    )
    assert code.exit_code == 0, code.output
    assert "capability:code: matched by capability code" in code.output
    assert "1. local  model=qwen2.5-coder:7b" in code.output and "2. cloud  model=big-model" in code.output
    big = CliRunner().invoke(main, ["route", "--config", path, "chat", "--prompt-tokens", "9000"])
    assert "dropped local/llama3.1:8b: context window 8192 < 9000" in big.output
    assert "1. dead  model=llama3.1:8b" in big.output  # window unknown: kept
    hinted = CliRunner().invoke(main, ["route", "--config", path, "chat", "--hint", "best_quality"])
    assert (
        "hint: best_quality" in hinted.output and "1. cloud  model=big-model  (tier 2; quality rank 1)" in hinted.output
    )
    too_big = CliRunner().invoke(main, ["route", "--config", path, "capability:code", "--prompt-tokens", "300000"])
    assert too_big.exit_code == 1 and "largest context window among the candidates is 200000" in too_big.output


def test_route_with_probe_shows_who_is_down(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        result = CliRunner().invoke(main, ["route", "--probe", "--config", str(write(tmp_path, up.url)), "chat"])
    assert result.exit_code == 0, result.output
    assert "dropped dead/llama3.1:8b: unavailable, retry in 300 s (health check failed" in result.output


def test_route_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["route", "--json", "--config", str(write(tmp_path, "http://127.0.0.1:9/v1")), "chat"]
    )
    data = json.loads(result.output)
    assert [o["candidate"] for o in data["order"]] == ["local/llama3.1:8b", "dead/llama3.1:8b", "cloud/big-model"]
    assert [s["step"] for s in data["steps"]] == ["context", "strategy", "health"]
