"""The operator's admin actions are audited: each leaves exactly one row naming who, what and the change.

Drain, restore and probe a provider, reload the config (both endpoints), clear the cache,
load and unload a local model, through the master key, an admin-scoped key and the console's
session; a refused action, and reads, leave no row. No row holds a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from llmmux.cli import main
from local.fixtures import tiny_gguf  # noqa: F401  (fixture)
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

MASTER = "sk-master-audit-0123456789abcdef"
PROVIDER_KEY = "sk-provider-secret-for-audit-42"


@pytest.fixture
def served(tmp_path: Path, tiny_gguf: Path) -> Iterator[tuple[str, Path, FakeOpenAI]]:  # noqa: F811
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "ui": {"enabled": True},
            "ledger": {"path": str(tmp_path / "l.db"), "flush_interval": 0.05},
            "health_checks": {"interval": 3600},
            "providers": {
                "up": {"type": "openai_compatible", "base_url": up.url, "api_key": PROVIDER_KEY, "models": ["m1"]},
                "local": {"type": "llama_cpp", "models": [{"name": "tiny", "path": str(tiny_gguf)}]},
            },
            "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m1"}}},
            "routing_strategy": {"routes": {"chat": {"cache": True}}},
        }
        path = tmp_path / "llmmux.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        process = start_serve(path, port, ["--no-reload"])  # only the admin API reloads it
        try:
            wait_healthy(port, process, limit=60)
            yield f"http://127.0.0.1:{port}", path, up
        finally:
            stop_serve(process)


def call(base: str, method: str, path: str, secret: str = MASTER, body: Any = None) -> httpx.Response:
    return httpx.request(method, base + path, json=body, headers={"authorization": f"Bearer {secret}"}, timeout=60)


def console_session(base: str, key: str = MASTER) -> httpx.Client:
    """A client logged in to the console, sending its CSRF header on changes as the console's script does."""
    client = httpx.Client(base_url=base, timeout=30)
    form = client.get("/ui/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None, form
    assert client.post("/ui/login", data={"csrf": token.group(1), "key": key}).status_code in (302, 303)
    page = client.get("/ui/").text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert csrf is not None, page
    client.headers["x-csrf-token"] = csrf.group(1)
    return client


def test_every_operator_action_leaves_exactly_one_row_and_no_secret(served: tuple[str, Path, FakeOpenAI]) -> None:
    base, path, _ = served
    admin_key = call(base, "POST", "/admin/keys", body={"name": "ops", "scopes": ["admin"]}).json()
    secrets = [MASTER, PROVIDER_KEY, admin_key["key"]]

    def ok(method: str, route: str, secret: str = MASTER, body: Any = None) -> Any:
        answer = call(base, method, route, secret, body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    ok("POST", "/admin/providers/up/drain")
    ok("POST", "/admin/providers/up/restore", admin_key["key"])
    ok("POST", "/admin/providers/up/probe")
    assert call(base, "POST", "/admin/providers/nowhere/drain").status_code == 404  # refused: no row
    ok("POST", "/v1/chat/completions", body={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert ok("DELETE", "/admin/cache?model=chat")["removed"] == 1
    config = yaml.safe_load(path.read_text())
    config["providers"]["more"] = {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m2"]}
    path.write_text(yaml.safe_dump(config))
    assert ok("POST", "/admin/config/reload")["reloaded"] is True
    assert ok("POST", "/admin/reload")["reloaded"] is True
    assert ok("POST", "/admin/models/tiny/load", body={"keep_alive": "1h"})["loaded"] is True
    assert ok("POST", "/admin/models/tiny/unload")["unloaded"] is True
    for secret, action in ((MASTER, "drain"), (admin_key["key"], "restore")):
        console = console_session(base, secret)
        try:
            done = console.post(f"/admin/providers/up/{action}")
            assert done.status_code == 200, done.text
        finally:
            console.close()
    ok("GET", "/admin/providers")  # reads leave no row
    rows = ok("GET", "/admin/audit?limit=100")["data"]

    made = [r for r in rows if r["action"] == "key.create"]
    assert len(made) == 1
    actions = [(r["action"], r["target"], r["actor"]) for r in reversed(rows) if r["action"] != "key.create"]
    ops = f"key:{admin_key['id']} (ops)"
    assert actions == [
        ("provider.drain", "up", "master key"),
        ("provider.restore", "up", ops),
        ("provider.probe", "up", "master key"),
        ("cache.clear", "chat", "master key"),
        ("config.reload", str(path), "master key"),
        ("config.reload", str(path), "master key"),
        ("model.load", "local/tiny", "master key"),
        ("model.unload", "local/tiny", "master key"),
        ("provider.drain", "up", "console"),
        ("provider.restore", "up", f"console, {ops}"),
    ]
    changes = [r["changes"] for r in reversed(rows) if r["action"] != "key.create"]
    assert changes[0]["routable"] == [True, False]
    assert changes[1]["routable"] == [False, True]
    assert changes[3]["removed"] == [None, 1]
    assert changes[4]["providers"] == [["local", "up"], ["local", "more", "up"]]
    assert changes[4]["reloaded"] == [None, True]
    assert changes[6]["loaded"] == [None, True] and changes[7]["unloaded"] == [None, True]
    everything = json.dumps(rows)
    for secret in secrets:
        assert secret not in everything
    assert "key_hint" not in everything
    # The same log, filtered, from the CLI and the API.
    db = str(path.parent / "l.db")
    listed = CliRunner().invoke(main, ["audit", "--db", db, "--action", "provider", "--since", "1h", "--json"])
    assert listed.exit_code == 0, listed.output
    kinds = [json.loads(line)["action"] for line in listed.stdout.splitlines()]
    assert kinds == ["provider.restore", "provider.drain", "provider.probe", "provider.restore", "provider.drain"]
    models = ok("GET", "/admin/audit?target=local/tiny")["data"]
    assert [r["action"] for r in models] == ["model.unload", "model.load"]
    assert ok("GET", "/admin/audit?action=model.load")["data"] == models[1:]
