"""The configs shipped in deploy/ load cleanly, as every instance would load them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmmux.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV = {"LLMMUX_MASTER_KEY": "sk-m", "REDIS_PASSWORD": "r", "POSTGRES_PASSWORD": "p", "OPENAI_API_KEY": "sk-o"}


def _check(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    config, problems = load_config(path)
    assert not problems.errors, [str(p) for p in problems.errors]
    assert str(config.state.url).startswith("redis://") and str(config.state.password) == "r"
    assert config.ledger.database_url is not None and "openai" in config.providers


def test_the_compose_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    _check(DEPLOY / "llmmux.yaml", monkeypatch)


def test_the_kubernetes_config_map_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "llmmux.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["ConfigMap", "Deployment", "Service", "PodDisruptionBudget"]
    config = tmp_path / "llmmux.yaml"
    config.write_text(documents[0]["data"]["llmmux.yaml"])
    _check(config, monkeypatch)
    pod = documents[1]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_compose_runs_instances_redis_postgres_and_a_balancer() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert set(services) == {"llmmux", "nginx", "redis", "postgres"}
    assert services["llmmux"]["deploy"]["replicas"] >= 2
