"""`--alert-at` on `llmmux keys` and `llmmux teams`: a budget's own alert threshold, checked and stored."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from llmmux.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={})
    return result.exit_code, result.output


def test_alert_at_is_set_cleared_and_checked(tmp_path: Path) -> None:
    db = str(tmp_path / "l.db")
    code, out = run("teams", "create", "--db", db, "--name", "search", "--budget", "50", "--alert-at", "0.7", "--json")
    assert code == 0, out
    assert json.loads(out)["alert_at"] == 0.7
    code, out = run("keys", "create", "--db", db, "--name", "ci", "--team", "search", "--alert-at", "0.95", "--json")
    assert code == 0, out
    assert json.loads(out)["alert_at"] == 0.95
    code, out = run("teams", "update", "--db", db, "search", "--alert-at", "none")
    assert code == 0, out
    listed = [json.loads(line) for line in run("teams", "list", "--db", db, "--json")[1].splitlines()]
    assert [(t["name"], t["alert_at"]) for t in listed] == [("search", None)]
    for bad in ("1.5", "0", "soon"):
        code, out = run("keys", "create", "--db", db, "--name", "x", "--alert-at", bad)
        assert code != 0 and "alert_at" in out.replace("-", "_"), out
    audit = [json.loads(line) for line in run("audit", "--db", db, "--action", "team", "--json")[1].splitlines()]
    assert audit[0]["action"] == "team.update" and audit[0]["changes"] == {"alert_at": [0.7, None]}
