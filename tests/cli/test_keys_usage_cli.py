"""`llmmux keys` and `llmmux usage` against a real ledger."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmmux.cli import main
from llmmux.keys import hash_secret
from support.ledgers import ledger_row, make_store

CONFIG = """
providers:
  local: {type: openai_compatible, base_url: "http://127.0.0.1:9/v1", models: [m1]}
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_create_list_update_revoke(ledger_url: str) -> None:
    code, out, err = run(
        "keys",
        "create",
        "--db",
        ledger_url,
        "--name",
        "team",
        "--budget",
        "25",
        "--budget-period",
        "weekly",
        "--rpm",
        "60",
        "--tpm",
        "100000",
        "--models",
        "gpt-4o,llama*",
        "--expires",
        "30d",
    )
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("sk-llmmux-") and "\n" not in secret  # stdout is the secret alone, for scripts
    assert "shown this once" in err and "budget $25 weekly, 60 rpm, 100000 tpm, models gpt-4o,llama*, expires" in err
    code, out, _ = run("keys", "list", "--db", ledger_url, "--json")
    (listed,) = [json.loads(line) for line in out.splitlines()]
    assert secret not in out and hash_secret(secret) not in out
    assert (listed["name"], listed["rpm"], listed["models"], listed["state"], listed["spend_usd"]) == (
        "team",
        60,
        ["gpt-4o", "llama*"],
        "active",
        0.0,
    )
    code, out, _ = run(
        "keys", "update", "--db", ledger_url, "team", "--rpm", "none", "--models", "*", "--name", "team2"
    )
    assert code == 0 and "all models" in out and "rpm" not in out
    code, out, _ = run("keys", "revoke", "--db", ledger_url, "team2")
    assert code == 0 and "Revoked key_" in out
    code, out, _ = run("keys", "list", "--db", ledger_url)
    assert "team2" in out and "revoked" in out and secret not in out


def test_mistakes_are_explained(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    assert run("keys", "revoke", "--db", db, "nobody")[2].strip().endswith("no key with id or name 'nobody'")
    code, _, err = run("keys", "create", "--db", db, "--name", "x", "--expires", "someday")
    assert code == 2 and "expected a duration such as 7d or a date" in err
    code, _, err = run("keys", "update", "--db", db, "x")
    assert code == 2 and "nothing to change" in err
    run("keys", "create", "--db", db, "--name", "twin")
    run("keys", "create", "--db", db, "--name", "twin")
    code, _, err = run("keys", "revoke", "--db", db, "twin")
    assert code == 2 and "2 keys are named 'twin'; use the id" in err


def test_the_ledger_defaults_to_a_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "llmmux.yaml").write_text(CONFIG)
    assert run("keys", "create", "-c", str(tmp_path / "llmmux.yaml"), "--name", "a")[0] == 0
    assert (tmp_path / "llmmux.db").exists()
    (tmp_path / "llmmux.yaml").write_text(CONFIG + "ledger: {enabled: false}\n")
    code, _, err = run("keys", "list", "-c", str(tmp_path / "llmmux.yaml"))
    assert code == 2 and "the ledger is disabled" in err


def test_an_unreachable_database_is_one_clear_line() -> None:
    code, _, err = run("keys", "list", "--db", "postgresql://u:hunter22hunter@127.0.0.1:9/x")
    assert code == 1 and err.startswith("llmmux: cannot use the ledger at postgresql://u:****@127.0.0.1:9/x")
    assert "hunter22hunter" not in err


def test_usage_table_and_json(ledger_url: str) -> None:
    now = time.time()

    async def fill() -> None:
        store = make_store(ledger_url)
        await store.open()
        await store.insert_requests(
            [
                ledger_row(request_id="1", ts=now - 60, cost_usd=0.5, latency_ms=100.0),
                ledger_row(request_id="2", ts=now - 60, cost_usd=0.25, latency_ms=300.0, provider="spare"),
                ledger_row(request_id="3", ts=now - 60, public_model="local", status=502, cost_usd=0.0, estimated=True),
                ledger_row(request_id="4", ts=now - 30 * 86400, cost_usd=9.0),
            ]
        )
        await store.close()

    asyncio.run(fill())
    code, out, err = run("usage", "--db", ledger_url, "--since", "1d")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "MODEL",
        "REQUESTS",
        "ERRORS",
        "PROMPT",
        "COMPLETION",
        "COST",
        "$",
        "P50",
        "ms",
        "P95",
        "ms",
    ]
    # Latency percentiles come from the rollups' histograms: within 2% of exact (200, 290).
    chat, total = lines[1].split(), lines[3].split()
    assert chat[:6] == ["chat", "2", "0", "20", "10", "0.750000"]
    assert total[:6] == ["TOTAL", "3", "1", "30", "15", "0.750000"]
    for cells in (chat, total):
        assert [float(c) for c in cells[6:]] == [pytest.approx(200, rel=0.02), pytest.approx(290, rel=0.02)]
    assert lines[2].split() == ["local", "1", "1", "10", "5", "0.000000", "-", "-"]
    assert "1 request(s) had no usage from the backend" in out
    code, out, _ = run("usage", "--db", ledger_url, "--since", "90d", "--by", "provider", "--json")
    report = json.loads(out)
    assert {r["group"]: r["requests"] for r in report["rows"]} == {"main": 3, "spare": 1}
    assert report["totals"]["cost_usd"] == 9.75
