"""The audit log: every admin action on keys and teams leaves exactly one row, and no row holds a secret."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from llmmux.cli import main
from support import Gateway
from support.ledgers import ledger_config
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"


def test_each_admin_action_leaves_one_row_with_no_secret(ledger_url: str) -> None:
    secrets: list[str] = [MASTER]
    config = {
        "server": {"master_key": MASTER},
        "ledger": ledger_config(ledger_url, flush_interval=0.05),
        "providers": {"main": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m1"]}},
    }

    def call(method: str, path: str, body: Any = None) -> Any:
        sent = {"POST": gw.post_json, "PATCH": gw.patch_json}
        response = sent[method](path, body, MASTER) if method in sent else gw.delete(path, MASTER)
        assert response.status_code in (200, 201), response.text
        return response.json()

    with FakeOpenAI(), Gateway(config) as gw:
        team = call("POST", "/admin/teams", {"name": "search", "budget": 10})
        key = call("POST", "/admin/keys", {"name": "ci", "team": "search", "rpm": 5})
        secrets.append(key["key"])
        call("PATCH", f"/admin/keys/{key['id']}", {"rpm": 10, "tags": "a"})
        call("PATCH", "/admin/teams/search", {"budget": 20})
        call("DELETE", f"/admin/keys/{key['id']}")
        call("DELETE", "/admin/teams/search")
        assert gw.post_json("/admin/teams", {"name": "bad", "rpm": 0}, MASTER).status_code == 400  # refused: no row
        assert gw.get("/admin/audit", "wrong").status_code == 401
        rows = gw.get("/admin/audit", MASTER).json()["data"]
    actions = [(r["action"], r["target"], r["actor"]) for r in reversed(rows)]
    assert actions == [
        ("team.create", team["id"], "master key"),
        ("key.create", key["id"], "master key"),
        ("key.update", key["id"], "master key"),
        ("team.update", team["id"], "master key"),
        ("key.revoke", key["id"], "master key"),
        ("team.delete", team["id"], "master key"),
    ]
    by_action = {r["action"]: r["changes"] for r in rows}
    assert by_action["key.update"] == {"rpm": [5, 10], "tags": [[], ["a"]]}
    assert by_action["team.update"] == {"budget_usd": [10.0, 20.0]}
    assert by_action["key.revoke"]["state"] == ["active", "revoked"]
    assert by_action["key.create"]["team_id"] == [None, team["id"]]
    # The CLI's changes are audited in the same log, under the OS user.
    result = CliRunner().invoke(main, ["keys", "create", "--db", ledger_url, "--name", "cli-key", "--json"])
    assert result.exit_code == 0, result.output
    secrets.append(json.loads(result.stdout)["key"])
    listed = CliRunner().invoke(main, ["audit", "--db", ledger_url, "--json"])
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(lines) == 7 and lines[0]["action"] == "key.create" and lines[0]["actor"].startswith("cli")
    text = CliRunner().invoke(main, ["audit", "--db", ledger_url]).stdout
    assert "team.delete" in text and "rpm: 5 -> 10" in text
    everything = json.dumps(rows) + listed.stdout + text
    assert "key_hint" not in everything and "hash" not in everything
    for secret in secrets:
        assert secret not in everything
