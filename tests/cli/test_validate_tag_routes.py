"""A tag route naming nothing that routes is a config error at load, named by file and key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmmux.cli import main
from llmmux.router import Router

CONFIG = """
providers:
  local:
    type: openai_compatible
    base_url: http://127.0.0.1:8000/v1
    models: [m1, m2]
routing:
  exact_matches:
    cheap-tier: {provider: local, model: m2}
capabilities:
  fast:
    preferred_models: [m1]
redundant_models:
  pair:
    providers:
      - {provider: local, model: m1}
model_size_routing:
  - {size: "< 8B", provider: local}
tag_routes:
  - {tag: batch, to: %s}
"""


def validate(tmp_path: Path, target: str) -> tuple[int, str]:
    path = tmp_path / "llmmux.yaml"
    path.write_text(CONFIG % target)
    result = CliRunner().invoke(main, ["validate", "--config", str(path)], env={})
    return result.exit_code, result.output


@pytest.mark.parametrize("target", ["cheap-tier", "pair", "capability:fast", "local/m9", "m2", "local", "llama-7b"])
def test_a_tag_route_to_a_route_group_capability_provider_or_model_passes(tmp_path: Path, target: str) -> None:
    code, output = validate(tmp_path, target)
    assert code == 0, output


@pytest.mark.parametrize("target", ["cheap-teir", "capability:slow", "nowhere/m1"])
def test_a_tag_route_to_nothing_is_an_error_naming_the_file_and_key(tmp_path: Path, target: str) -> None:
    code, output = validate(tmp_path, target)
    assert code == 1, output
    line = next(line for line in output.splitlines() if "tag_routes" in line)
    assert line.startswith("error: ") and "llmmux.yaml: tag_routes[0].to:" in line, output
    assert f"'{target}' is not a route, group, capability, provider or model" in line
    assert "cheap-tier" in line  # what it could have been


def test_serve_and_reload_refuse_a_tag_route_that_goes_nowhere(tmp_path: Path) -> None:
    path = tmp_path / "llmmux.yaml"
    path.write_text(CONFIG % "ghost")
    served = subprocess.run(
        [sys.executable, "-m", "llmmux", "serve", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode != 0 and "tag_routes[0].to" in served.stdout + served.stderr
    path.write_text(CONFIG % "cheap-tier")
    router = Router.from_config(path)
    path.write_text(CONFIG % "ghost")
    _, problems = router.check_source()  # what a reload reads: the old config stays
    assert [p.path for p in problems.errors] == ["tag_routes[0].to"]
