"""A broken config gives the same clear lines from every command, from serve and from reload.

Every command reads the config through the one load-and-validate path (`llmmux.loading`):
each prints the problems exactly as `llmmux validate` does and exits 2, never a traceback
and never working on from a config that `serve` would refuse.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmmux import Router
from llmmux.cli import main
from llmmux.cli.ps import KEY_ENV
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy

PROVIDERS = """
providers:
  up:
    type: openai_compatible
    base_url: http://127.0.0.1:9/v1
    models: [m]
  loc:
    type: openai_compatible
    base_url: ftp://nowhere
"""
MAPPINGS = """
exact_matches:
  fast: {provider: ghost}
"""

# Commands that only read the config (besides validate): each must refuse a broken one.
READ_ONLY = [
    ["providers", "list"],
    ["providers", "info", "up"],
    ["models"],
    ["route", "fast"],
    ["health"],
    ["keys", "list"],
    ["teams", "list"],
    ["usage"],
    ["audit"],
    ["logs", "up"],
    ["ps"],
]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    (tmp_path / "model-mappings.yaml").write_text(MAPPINGS)
    return tmp_path


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def _validate_errors(folder: Path) -> list[str]:
    result = CliRunner().invoke(main, ["validate", "--config", str(folder)], env={})
    assert result.exit_code == 1, result.output
    lines = _error_lines(result.output)
    assert lines == [
        f"error: {folder / 'providers.yaml'}: providers.loc.base_url: expected an http(s) URL with a host, got 'ftp://nowhere'",
        f"error: {folder / 'model-mappings.yaml'}: exact_matches.fast.provider: unknown provider 'ghost'",
    ]
    return lines


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_read_only_command_prints_what_validate_prints(broken: Path, command: list[str]) -> None:
    expected = _validate_errors(broken)
    result = CliRunner().invoke(main, [*command, "--config", str(broken)], env={})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert _error_lines(result.stderr) == expected
    assert "Traceback" not in result.output


def test_serve_prints_what_validate_prints(broken: Path) -> None:
    expected = _validate_errors(broken)
    done = subprocess.run(
        [sys.executable, "-m", "llmmux", "serve", "--config", str(broken), "--port", "9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert _error_lines(done.stderr) == expected
    assert "Traceback" not in done.stderr


async def test_reload_logs_what_validate_prints(broken: Path, caplog: pytest.LogCaptureFixture) -> None:
    expected = _validate_errors(broken)
    (broken / "model-mappings.yaml").write_text("exact_matches:\n  fast: {provider: up}\n")
    (broken / "providers.yaml").write_text(PROVIDERS.replace("ftp://nowhere", "http://127.0.0.1:9/v1"))
    router = Router.from_config(broken)
    (broken / "providers.yaml").write_text(PROVIDERS)
    (broken / "model-mappings.yaml").write_text(MAPPINGS)
    async with router:
        with caplog.at_level(logging.ERROR, logger="llmmux"):
            assert await router.reload_from_source() is False
    rejected = [r.getMessage().removeprefix("config reload rejected: ") for r in caplog.records]
    assert [line for line in rejected if line.startswith("error: ")] == expected


def test_reload_of_a_running_gateway_prints_what_validate_prints(broken: Path) -> None:
    """`llmmux reload` asks the gateway, which refuses the broken files: the command prints the
    gateway's reasons as validate does, and the gateway logs the same lines."""
    expected = _validate_errors(broken)
    (broken / "model-mappings.yaml").write_text("exact_matches:\n  fast: {provider: up}\n")
    (broken / "providers.yaml").write_text(PROVIDERS.replace("ftp://nowhere", "http://127.0.0.1:9/v1"))
    (broken / "llmmux.yaml").write_text("server: {master_key: sk-master-0123456789}\n")
    port = free_port()
    gateway = start_serve(broken, port)
    try:
        wait_healthy(port, gateway)
        (broken / "providers.yaml").write_text(PROVIDERS)
        (broken / "model-mappings.yaml").write_text(MAPPINGS)
        admin = {KEY_ENV: "sk-master-0123456789"}
        result = CliRunner().invoke(main, ["reload", "--url", f"http://127.0.0.1:{port}"], env=admin)
    finally:
        logged = stop_serve(gateway)
    assert result.exit_code == 2, result.output
    assert _error_lines(result.stderr) == expected
    assert all(f"config reload rejected: {line}" in logged for line in expected), logged
