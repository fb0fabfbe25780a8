"""The console's teams and audit-log pages in a real browser (headless Debian chromium, real `llmmux serve`)."""

from __future__ import annotations

import uuid
from typing import Any

import openai
import pytest
from playwright.sync_api import expect

from .conftest import ALPHA_KEY, MASTER, ConsoleServer, log_in, readme_shot


@pytest.mark.readme_shot
def test_teams(page: Any, served: ConsoleServer) -> None:
    """A team made in the console shows its keys and spend, its budget stops them, and edit and delete work."""
    log_in(page, served)
    page.click("nav >> text=Teams")
    page.click("details.create summary")
    name = f"search-{uuid.uuid4().hex[:6]}"
    page.fill("#create-team input[name=name]", name)
    page.fill("#create-team input[name=budget]", "0.000001")
    page.fill("#create-team input[name=alert_at]", "0.5")
    page.fill("#create-team input[name=rpm]", "600")
    page.click("#create-team button[type=submit]")
    row = page.locator(f"tr[data-team='{name}']")
    row.wait_for()
    assert "alert at 50.0%" in row.inner_text() and "600 rpm" in row.inner_text()

    made = served.admin("POST", "/admin/keys", json={"name": f"{name}-app", "team": name})
    assert made.status_code == 201, made.text
    with openai.OpenAI(base_url=f"{served.root}/v1", api_key=made.json()["key"], max_retries=0) as sdk:
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.RateLimitError, match=f"team '{name}'"):
            sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    page.reload()
    assert row.locator("td.members").inner_text() == f"{name}-app"
    assert "of $0" in row.inner_text()
    readme_shot(page, served, "teams")

    row.locator("button", has_text="Edit").click()
    row.locator("form.edit input[name=budget]").fill("7")
    row.locator("form.edit button[type=submit]").click()
    page.locator(f"tr[data-team='{name}']", has_text="of $7.00 monthly").wait_for()
    shown = served.admin("GET", f"/admin/teams/{name}").json()
    assert (shown["budget_usd"], shown["alert_at"], shown["rpm"]) == (7.0, 0.5, 600)

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.danger").click()
    row.wait_for(state="detached")
    assert served.admin("GET", f"/admin/teams/{name}").status_code == 404


@pytest.mark.readme_shot
def test_audit(page: Any, served: ConsoleServer) -> None:
    """The audit log lists admin actions (the console's own included), filters them, and shows no secret."""
    name = f"audited-{uuid.uuid4().hex[:6]}"
    team = served.admin("POST", "/admin/teams", json={"name": name, "budget": 3})
    assert team.status_code == 201, team.text
    made = served.admin("POST", "/admin/keys", json={"name": f"{name}-key", "team": name}).json()
    log_in(page, served)
    page.goto(f"{served.ui}/providers")
    beta = page.locator("tr[data-provider=beta]")
    beta.locator("button", has_text="Take out").click()
    beta.locator(".badge", has_text="drained").wait_for()
    beta.locator("button", has_text="Put back").click()
    beta.locator(".badge", has_text="active").wait_for()

    page.click("nav >> text=Audit log")
    rows = page.locator("#audit tbody tr")
    page.locator("#audit tbody tr[data-action='provider.restore']").first.wait_for()
    actions = rows.evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert actions[:4] == ["provider.restore", "provider.drain", "key.create", "team.create"]
    first = rows.first.inner_text()
    assert "console" in first and "beta" in first and "routable: false → true" in first
    readme_shot(page, served, "audit")

    page.select_option("#audit-filter select[name=action]", "team")
    page.fill("#audit-filter input[name=target]", team.json()["id"])
    page.click("#audit-filter button[type=submit]")
    expect(rows).to_have_count(1)
    only = rows.first
    assert only.get_attribute("data-action") == "team.create" and "budget_usd: null → 3" in only.inner_text()

    text = page.locator("main").inner_text() + page.content()
    for secret in (MASTER, ALPHA_KEY, made["key"]):
        assert secret not in text
