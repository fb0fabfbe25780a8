"""The console's page table: adding a page is one row in PAGES plus, for its script, one asset file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from llmmux.console import pages
from llmmux.console.pages import PAGES, Page, render

from .test_console_security import logged_in


def test_a_new_page_is_one_row_and_one_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    for name in ("console.js", "console.css"):
        (assets / name).write_bytes(pages.ASSETS.joinpath(name).read_bytes())
    (assets / "teams.js").write_text("llmmux.pages.teams = () => {};")
    monkeypatch.setattr(pages, "ASSETS", assets)
    monkeypatch.setitem(PAGES, "teams", Page("Teams", '<table id="teams"></table>'))

    html = render("/ui", "teams", "token").decode()
    assert '<h1>Teams</h1><table id="teams"></table>' in html
    assert '<a href="/ui/teams" class=active>Teams</a>' in html
    # Its script runs after console.js, whose helpers it reaches through window.llmmux.
    assert html.index('src="/ui/assets/console.js"') < html.index('src="/ui/assets/teams.js"')
    # Every other page lists it in the navigation, and loads no script but its own.
    keys = render("/ui", "keys", "token").decode()
    assert '<a href="/ui/teams">Teams</a>' in keys and "teams.js" not in keys


def test_only_a_pages_own_script_is_served_and_only_with_a_session(served: Any) -> None:
    client, _ = logged_in(served)
    try:
        assert client.get("/ui/assets/console.js").status_code == 200
        assert client.get("/ui/assets/teams.js").status_code == 200  # the Teams page's own script
        for name in ("overview.js", "../pages.py", "session.py", "team_pages.js", "console.map"):
            assert client.get(f"/ui/assets/{name}").status_code == 404, name
    finally:
        client.close()
    assert httpx.get(f"{served.ui}/assets/console.js", timeout=10).status_code == 404
