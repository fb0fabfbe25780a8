"""Ollama's model management and reads reach the backend through the router: health and limits
apply, and a pull or delete is recorded like any request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import Gateway
from upstreams import status
from upstreams.ollama_server import FakeOllama

MASTER = "sk-master-0123456789abcdef"


@pytest.fixture
def ollama_backend() -> Iterator[FakeOllama]:
    with FakeOllama() as up:
        yield up


@pytest.fixture
def gw(ollama_backend: FakeOllama, tmp_path: Path) -> Iterator[Gateway]:
    config = {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval": 0.05},
        "health_checks": {"enabled": False, "passive": True, "local": {"failure_threshold": 1}},
        "providers": {"local": {"type": "ollama", "base_url": ollama_backend.url, "models": ["llama3.2:latest"]}},
    }
    with Gateway(config) as gateway:
        yield gateway


def test_a_pull_and_a_delete_are_recorded_in_the_ledger(gw: Gateway) -> None:
    pulled = gw.post_json("/api/pull", {"model": "mistral:7b", "stream": False}, MASTER)
    assert pulled.status_code == 200 and pulled.json()["status"] == "success"
    deleted = httpx.request(
        "DELETE",
        gw.root_url + "/api/delete",
        json={"model": "mistral:7b"},
        headers={"authorization": f"Bearer {MASTER}"},
    )
    assert deleted.status_code == 200
    gw.wait_for_ledger(2)
    rows = gw.get("/admin/requests", MASTER).json()["data"]
    rows = [(r["public_model"], r["provider"], r["model"], r["status"], r["client_api"]) for r in rows]
    assert rows == [("mistral:7b", "local", "mistral:7b", 200, "ollama")] * 2
    # Each is an admin action too: exactly one audit row apiece, naming who and which model.
    audited = gw.get("/admin/audit", MASTER).json()["data"]
    assert [(r["action"], r["actor"], r["target"]) for r in audited] == [
        ("model.delete", "master key", "mistral:7b"),
        ("model.pull", "master key", "mistral:7b"),
    ]
    assert MASTER not in json.dumps(audited)


def test_a_backend_taken_out_of_rotation_is_not_called(gw: Gateway, ollama_backend: FakeOllama) -> None:
    gw.router.health.take_out("local")
    shown = gw.post_json("/api/show", {"model": "llama3.2:latest"}, MASTER)
    assert shown.status_code == 503 and isinstance(shown.json()["error"], str)  # Ollama's shape
    assert ollama_backend.requests_to("/api/show") == []


def test_a_failing_backend_call_counts_toward_its_health(gw: Gateway, ollama_backend: FakeOllama) -> None:
    ollama_backend.script(status(500), path="/api/version")
    assert gw.get("/api/version", MASTER).json()["version"]  # llmmux's own, when the backend fails
    assert gw.router.health.record("local").state == "cooldown"
