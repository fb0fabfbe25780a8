"""Whatever changes a backend or the gateway is for the admin: the master key or a key with the `admin` scope.

Also: key scopes (`admin`, `metrics`) set through the admin API and `llmmux keys create
--scope`, and /metrics behind the master key or a metrics-scoped key once a master key is set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from security.served import Served
from upstreams import FakeOpenAI
from upstreams.ollama_server import FakeOllama

MASTER = "sk-master-ADMIN-0123456789abcdef"


def config(alpha: FakeOpenAI, ollama: FakeOllama, **server: Any) -> dict[str, Any]:
    return {
        "server": server,
        "health_checks": {"enabled": False, "passive": False},
        "providers": {
            "alpha": {"type": "openai_compatible", "base_url": alpha.url, "models": ["gpt-a"]},
            "local": {"type": "ollama", "base_url": ollama.url, "models": ["llama3.2:latest"]},
        },
    }


class Env:
    def __init__(self, gw: Served, ollama: FakeOllama) -> None:
        self.gw, self.ollama = gw, ollama
        self.plain = gw.key("plain")
        self.admin = gw.key("ops", scopes=["admin"])


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with FakeOpenAI() as alpha, FakeOllama() as ollama:
        with Served(tmp_path_factory.mktemp("admin"), config(alpha, ollama, master_key=MASTER), MASTER) as gw:
            yield Env(gw, ollama)


@pytest.fixture
def e(env: Env) -> Env:
    env.ollama.reset()
    return env


def test_pull_and_delete_need_the_admin(e: Env) -> None:
    pull = {"model": "mistral:7b", "stream": False}
    refused = e.gw.post("/api/pull", pull, e.plain)
    assert refused.status_code == 403
    assert "needs the master key or a key with the 'admin' scope" in refused.json()["error"]  # Ollama's shape
    assert e.gw.delete("/api/delete", {"model": "llama3.2:latest"}, e.plain).status_code == 403
    assert not e.ollama.requests_to("/api/pull") and not e.ollama.requests_to("/api/delete")
    assert e.gw.post("/api/pull", pull, e.admin).json()["status"] == "success"
    assert e.gw.delete("/api/delete", {"model": "mistral:7b"}, e.admin).status_code == 200
    assert e.gw.post("/api/pull", pull, MASTER).status_code == 200


def test_a_url_for_a_model_name_is_never_pulled(e: Env) -> None:
    hostile = {"model": "http://169.254.169.254/latest/meta-data", "insecure": True, "stream": False}
    assert e.gw.post("/api/pull", hostile, e.plain).status_code == 403
    refused = e.gw.post("/api/pull", hostile, MASTER)
    assert refused.status_code == 400 and "not a URL" in refused.json()["error"]
    assert not e.ollama.requests_to("/api/pull")


def test_the_admin_api_and_local_models_take_an_admin_scoped_key(e: Env) -> None:
    assert e.gw.get("/admin/keys", e.plain).status_code == 403
    assert e.gw.get("/admin/models", e.plain).status_code == 403
    assert e.gw.post("/admin/models/llama3.2:latest/load", {}, e.plain).status_code == 403
    listed = e.gw.get("/admin/keys", e.admin)
    assert listed.status_code == 200
    scopes = {k["name"]: k["scopes"] for k in listed.json()["data"]}
    assert scopes["ops"] == ["admin"] and scopes["plain"] == []
    made = e.gw.post("/admin/keys", {"name": "by-ops", "models": ["gpt-a"]}, e.admin)
    assert made.status_code == 201 and made.json()["key"].startswith("sk-llmmux-")
    bad = e.gw.post("/admin/keys", {"name": "x", "scopes": ["root"]}, MASTER)
    assert bad.status_code == 400 and "unknown scope 'root'" in bad.json()["error"]["message"]


def test_metrics_need_the_master_key_or_a_metrics_scope(e: Env) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "llmmux", "keys", "create", "-c", str(e.gw.config_path), "--name", "prom"]
        + ["--scope", "metrics"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert "scopes metrics" in made.stderr
    scraper = made.stdout.strip()
    assert httpx.get(e.gw.url + "/metrics", timeout=10).status_code == 401
    assert e.gw.get("/metrics", e.plain).status_code == 403
    scraped = e.gw.get("/metrics", scraper)
    assert scraped.status_code == 200 and "llmmux_" in scraped.text
    assert e.gw.get("/metrics", MASTER).status_code == 200
    assert e.gw.get("/health", None).status_code == 200  # liveness stays open
    listed = subprocess.run(
        [sys.executable, "-m", "llmmux", "keys", "list", "-c", str(e.gw.config_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    assert {r["name"]: r["scopes"] for r in rows}["prom"] == ["metrics"]


@pytest.mark.parametrize(("metrics", "anonymous"), [({}, 401), ({"public": True}, 200)])
def test_metrics_are_opened_only_explicitly(tmp_path: Path, metrics: dict[str, Any], anonymous: int) -> None:
    with FakeOpenAI() as alpha, FakeOllama() as ollama:
        settings = {**config(alpha, ollama, master_key=MASTER), "metrics": metrics}
        with Served(tmp_path, settings, MASTER) as gw:
            assert httpx.get(gw.url + "/metrics", timeout=10).status_code == anonymous


def test_without_a_master_key_a_virtual_key_still_cannot_manage_models(tmp_path: Path) -> None:
    with FakeOpenAI() as alpha, FakeOllama() as ollama:
        with Served(tmp_path, config(alpha, ollama), MASTER) as gw:
            made = subprocess.run(
                [sys.executable, "-m", "llmmux", "keys", "create", "-c", str(gw.config_path), "--name", "user"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            user = made.stdout.strip()
            pull = {"model": "mistral:7b", "stream": False}
            assert gw.post("/api/pull", pull, user).status_code == 403
            assert gw.get("/admin/models", user).status_code == 403
            assert not ollama.requests_to("/api/pull")
            assert gw.post("/api/pull", pull).status_code == 200  # an open gateway: no key, no limits
