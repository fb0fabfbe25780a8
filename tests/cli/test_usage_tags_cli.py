"""`llmmux usage --by tag|user --tag X` and `--csv` against a real ledger, and key tags from `llmmux keys`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time

from click.testing import CliRunner

from llmmux.cli import main
from support.ledgers import ledger_row, make_store


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def fill(url: str) -> None:
    now = time.time() - 60

    async def insert() -> None:
        store = make_store(url)
        await store.open()
        await store.insert_requests(
            [
                ledger_row(request_id="1", ts=now, tags='["batch","team-a"]', end_user="alice", cost_usd=0.5),
                ledger_row(request_id="2", ts=now, tags='["team-a"]', end_user="bob", cost_usd=0.25),
                ledger_row(request_id="3", ts=now, tags='["batch"]', end_user="alice", status=500, cost_usd=0.0),
                ledger_row(request_id="4", ts=now, cost_usd=1.0),
                # A tag that contains another as a substring must not match it.
                ledger_row(request_id="5", ts=now, tags='["batch2"]', cost_usd=2.0),
            ]
        )
        await store.close()

    asyncio.run(insert())


def test_usage_by_tag_user_and_filtered_by_tag(ledger_url: str) -> None:
    fill(ledger_url)
    code, out, err = run("usage", "--db", ledger_url, "--by", "tag", "--json")
    assert code == 0, err
    report = json.loads(out)
    rows = {r["group"]: (r["requests"], r["errors"], r["cost_usd"]) for r in report["rows"]}
    assert rows == {"batch": (2, 1, 0.5), "team-a": (2, 0, 0.75), "batch2": (1, 0, 2.0), "": (1, 0, 1.0)}
    assert report["totals"]["requests"] == 5
    code, out, _ = run("usage", "--db", ledger_url, "--by", "user", "--tag", "batch", "--json")
    report = json.loads(out)
    assert report["tag"] == "batch"
    assert {r["group"]: r["requests"] for r in report["rows"]} == {"alice": 2}
    assert report["totals"]["cost_usd"] == 0.5
    code, out, _ = run("usage", "--db", ledger_url, "--by", "tag", "--tag", "team-a")
    assert code == 0 and "tagged team-a" in out and "counts under each" in out
    assert [line.split()[:2] for line in out.splitlines() if line.startswith("TOTAL")] == [["TOTAL", "2"]]


def test_usage_as_csv(ledger_url: str) -> None:
    fill(ledger_url)
    code, out, err = run("usage", "--db", ledger_url, "--by", "user", "--csv")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    assert [(r["user"], r["requests"], r["cost_usd"]) for r in table] == [
        ("", "2", "3.0"),
        ("alice", "2", "0.5"),
        ("bob", "1", "0.25"),
    ]


def test_a_bad_tag_filter_is_one_clear_line(tmp_path: object) -> None:
    code, _, err = run("usage", "--db", "x.db", "--tag", "a b")
    assert code == 2 and "invalid tag" in err


def test_keys_carry_default_tags_and_end_user_limits(ledger_url: str) -> None:
    code, out, err = run(
        "keys", "create", "--db", ledger_url, "--name", "app", "--tags", "env:prod,web", "--end-user-rpm", "5", "--json"
    )
    assert code == 0, err
    key = json.loads(out)
    assert key["tags"] == ["env:prod", "web"] and key["end_user_limits"] == {"rpm": 5, "budget": None}
    code, out, err = run("keys", "update", "--db", ledger_url, key["id"], "--end-user-budget", "2.5", "--tags", "none")
    assert code == 0, err
    assert "each end user $2.5" in out and "tags" not in out
    code, out, err = run("keys", "update", "--db", ledger_url, key["id"], "--block-free")
    assert code == 0 and "free models blocked past the budget" in out, err
    code, _, err = run("keys", "update", "--db", ledger_url, key["id"], "--tags", "bad tag")
    assert code == 2 and "invalid tag" in err


def test_teams_create_list_update_delete_and_keys_join_them(ledger_url: str) -> None:
    code, out, err = run("teams", "create", "--db", ledger_url, "--name", "search", "--budget", "50", "--rpm", "600")
    assert code == 0, err
    assert "Created team team_" in out and "budget $50 monthly" in out and "600 rpm" in out
    code, out, err = run("keys", "create", "--db", ledger_url, "--name", "ci", "--team", "search", "--json")
    assert code == 0, err
    key = json.loads(out)
    assert key["team_id"].startswith("team_")
    code, out, err = run("keys", "create", "--db", ledger_url, "--name", "x", "--team", "nope")
    assert code == 2 and "no team with id or name 'nope'" in err
    code, out, _ = run("teams", "update", "--db", ledger_url, "search", "--block-free", "--tags", "team:search")
    assert code == 0 and "free models blocked" in out and "tags team:search" in out
    code, out, _ = run("teams", "list", "--db", ledger_url, "--json")
    listed = json.loads(out)
    assert listed["name"] == "search" and listed["keys"] == 1 and listed["spend_usd"] == 0.0
    code, out, _ = run("teams", "create", "--db", ledger_url, "--name", "search")
    assert code == 2 and "exists already" in out + _
    code, out, _ = run("teams", "delete", "--db", ledger_url, "search")
    assert code == 0 and "1 key(s) left it" in out
    code, out, _ = run("keys", "list", "--db", ledger_url, "--json")
    assert json.loads(out)["team_id"] is None
    code, out, err = run("teams", "delete", "--db", ledger_url, "search")
    assert code == 2 and "no team" in err
