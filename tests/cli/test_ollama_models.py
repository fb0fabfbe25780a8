"""`llmmux models` (listing), `llmmux models pull` and `llmmux models rm` against a fake Ollama."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from llmmux.cli import main
from llmmux.cli.ollama_models import PullDisplay
from llmmux.wire.ollama import Progress
from upstreams import drop_mid_stream
from upstreams.ollama_server import FakeOllama

fake = FakeOllama.fixture()


def write_config(tmp_path: Path, providers: str) -> Path:
    path = tmp_path / "llmmux.yaml"
    path.write_text("providers:\n" + providers)
    return path


@pytest.fixture
def config(tmp_path: Path, fake: FakeOllama) -> Path:
    return write_config(
        tmp_path,
        f"""
  local:
    type: ollama
    base_url: {fake.url}
    models:
      - name: llama3.2:latest
  openai:
    type: openai
    api_key: sk-test
    models:
      - name: gpt-4o-mini
""",
    )


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_models_without_a_subcommand_still_lists_the_routable_models(config: Path) -> None:
    result = run("models", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "llama3.2:latest" in result.stdout and "local/llama3.2:latest" in result.stdout
    assert "openai/gpt-4o-mini" in result.stdout
    assert "pull" in run("models", "--help").stdout and "rm" in run("models", "--help").stdout


def test_pull_shows_each_step_and_the_model_is_then_on_the_server(config: Path, fake: FakeOllama) -> None:
    result = run("models", "pull", "mistral:7b", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert fake.last("/api/pull").json == {"model": "mistral:7b", "stream": True}
    digest = FakeOllama().registry["mistral:7b"].digest[7:19]
    assert result.stderr.splitlines() == [
        "pulling manifest",
        f"pulling {digest}: 4.1 GB",
        "pulling 4f4f4f4f4f4f: 12.4 KB",
        "verifying sha256 digest",
        "writing manifest",
        "success",
    ]
    assert result.stdout == "pulled mistral:7b onto local\n"
    assert "mistral:7b" in fake.models


def test_the_config_may_be_given_to_the_group_and_the_provider_by_name(config: Path, fake: FakeOllama) -> None:
    result = run("models", "-c", str(config), "pull", "mistral:7b", "--provider", "local")
    assert result.exit_code == 0, result.output


def test_a_failed_pull_is_one_line_and_exit_status_1(config: Path, fake: FakeOllama) -> None:
    result = run("models", "pull", "no-such-model", "-c", str(config))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "llmmux: local failed: pull model manifest: file does not exist"
    fake.script(drop_mid_stream(2), path="/api/pull")
    result = run("models", "pull", "mistral:7b", "-c", str(config))
    assert result.exit_code == 1 and "llmmux: local" in result.stderr


def test_rm_deletes_and_a_missing_model_fails(config: Path, fake: FakeOllama) -> None:
    result = run("models", "rm", "llama3.2:latest", "-p", "local", "-c", str(config))
    assert (result.exit_code, result.stdout) == (0, "deleted llama3.2:latest from local\n")
    assert fake.last("/api/delete").json == {"model": "llama3.2:latest"}
    result = run("models", "rm", "llama3.2:latest", "-c", str(config))
    assert result.exit_code == 1
    assert "llmmux: local /api/delete llama3.2:latest returned 404: model 'llama3.2:latest' not found" in result.stderr


def test_the_provider_must_be_an_ollama_one(config: Path, tmp_path: Path, fake: FakeOllama) -> None:
    result = run("models", "rm", "x", "-p", "openai", "-c", str(config))
    assert result.exit_code == 2 and "'openai' does not speak Ollama's API; Ollama providers: local" in result.stderr
    result = run("models", "rm", "x", "-p", "nowhere", "-c", str(config))
    assert result.exit_code == 2 and "'nowhere' is not configured" in result.stderr
    two = write_config(
        tmp_path,
        f"""
  local:
    type: ollama
    base_url: {fake.url}
  cloud:
    type: ollama_cloud
    api_key: sk-x
""",
    )
    result = run("models", "pull", "x", "-c", str(two))
    assert result.exit_code == 2
    assert "pass --provider: 2 Ollama providers are configured (local, cloud)" in result.stderr
    assert fake.requests == []


def test_on_a_terminal_a_layer_is_one_line_redrawn_in_place() -> None:
    out = io.StringIO()
    display = PullDisplay(out, tty=True)
    for progress in [
        Progress(status="pulling manifest"),
        Progress(status="pulling abc", digest="sha256:abc", total=2_000_000_000),
        Progress(status="pulling abc", digest="sha256:abc", total=2_000_000_000, completed=500_000_000),
        Progress(status="pulling abc", digest="sha256:abc", total=2_000_000_000, completed=2_000_000_000),
        Progress(status="success"),
    ]:
        display.show(progress)
    display.close()
    frames = out.getvalue().split("\r")
    assert frames[0] == "pulling manifest\n"
    assert [" ".join(f.split()) for f in frames[1:]] == [
        "pulling abc: 0% 0 B/2.0 GB",
        "pulling abc: 25% 500.0 MB/2.0 GB",
        "pulling abc: 100% 2.0 GB/2.0 GB success",
    ]
    assert frames[-1].endswith(" \nsuccess\n")
