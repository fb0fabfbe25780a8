"""The console in a real browser: headless Debian chromium in front of a real `llmmux serve`."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import openai
import pytest

from .conftest import MASTER, ConsoleServer, log_in, readme_shot

WITHIN_S = 2.0


def _words() -> str:
    return "walrus" + uuid.uuid4().hex[:10]


@pytest.mark.readme_shot
def test_providers(page: Any, served: ConsoleServer) -> None:
    log_in(page, served)
    page.click("nav >> text=Providers")
    rows = page.locator("#providers tbody tr")
    rows.first.wait_for()
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.provider)")) == ["alpha", "beta"]
    assert page.locator("tr[data-provider=alpha] .badge").inner_text() == "active"


@pytest.mark.readme_shot
def test_requests(page: Any, served: ConsoleServer) -> None:
    """A prompt sent with try-it shows in the live tail within 2 s, and a word of its reply finds it."""
    log_in(page, served)
    tail = page.context.new_page()
    tail.goto(f"{served.ui}/requests")
    tail.locator("#tail-state", has_text="live").wait_for()
    assert tail.locator("#body-log").inner_text() == "· bodies logged"
    word = _words()
    page.goto(f"{served.ui}/routes")
    page.select_option("#try-model", "chat")
    page.fill("#try-prompt", f"tell me about {word}")
    page.click("#try button[type=submit]")
    reply = page.locator("#try-reply")
    reply.wait_for()
    readme_shot(page, served, "try-it")
    answered = time.monotonic()
    assert reply.inner_text() == f"alpha says: tell me about {word}"
    assert "alpha / m1" in page.locator("#try-result dl").inner_text()
    request_id = page.locator("#try-result a").get_attribute("href").rsplit("/", 1)[1]
    tail.locator(f"tr[data-request-id='{request_id}']").wait_for(timeout=WITHIN_S * 1000)
    assert time.monotonic() - answered < WITHIN_S
    readme_shot(tail, served, "live-tail")
    tail.close()

    # Search by a word of the reply: the body store's full-text index finds it once written.
    page.goto(f"{served.ui}/requests")
    page.uncheck("#live")
    found = page.locator(f"tr[data-request-id='{request_id}']")
    deadline = time.monotonic() + 10
    while True:
        page.fill("#search input[name=q]", word)
        page.click("#search button[type=submit]")
        page.wait_for_timeout(300)
        if found.count() or time.monotonic() > deadline:
            break
    assert page.locator("#requests tbody tr").count() == 1
    found.click()
    page.wait_for_url(f"{served.ui}/requests/{request_id}")
    page.locator("#attempts").wait_for()
    assert word in page.locator("#request-body").inner_text()
    assert f"alpha says: tell me about {word}" in page.locator("#response-body").inner_text()
    assert "1. alpha / m1" in page.locator("#attempts").inner_text()
    assert "console" in page.locator("dl.facts").inner_text()


@pytest.mark.readme_shot
def test_keys(page: Any, served: ConsoleServer) -> None:
    """A key created in the console works with the openai SDK until it is revoked there."""
    log_in(page, served)
    page.click("nav >> text=Keys")
    page.click("details.create summary")
    name = f"ci-{uuid.uuid4().hex[:6]}"
    page.fill("#create-key input[name=name]", name)
    page.fill("#create-key input[name=budget]", "5")
    page.click("#create-key button[type=submit]")
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("sk-")
    row = page.locator(f"tr[data-key='{name}']")
    row.wait_for()
    assert secret not in page.locator("#keys").inner_text()  # the list never shows it

    sdk = openai.OpenAI(base_url=f"{served.root}/v1", api_key=secret, max_retries=0)
    answer = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "alpha says: hi"

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.danger").click()
    page.locator(f"tr[data-key='{name}'] .badge", has_text="revoked").wait_for()
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    sdk.close()


@pytest.mark.readme_shot
def test_drain(page: Any, served: ConsoleServer) -> None:
    """A provider taken out of rotation in the console is skipped by its routes until put back."""
    log_in(page, served)
    sdk = openai.OpenAI(base_url=f"{served.root}/v1", api_key=MASTER, max_retries=0)

    def answer() -> str:
        reply = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "who"}])
        return str(reply.choices[0].message.content)

    assert answer() == "alpha says: who"
    page.goto(f"{served.ui}/providers")
    alpha = page.locator("tr[data-provider=alpha]")
    alpha.locator("button", has_text="Take out").click()
    alpha.locator(".badge", has_text="drained").wait_for()
    try:
        assert answer() == "beta says: who"
        page.goto(f"{served.ui}/routes")
        chat = page.locator("#routes tbody tr").filter(has=page.locator("td:first-child", has_text="chat"))
        assert chat.locator("summary").inner_text() == "beta/m1 (skipping alpha/m1)"
        chat.locator("summary").click()
        assert "drained, until put back" in chat.locator("details").inner_text()
        page.goto(f"{served.ui}/providers")
        page.locator("tr[data-provider=alpha] .badge", has_text="drained").wait_for()
        page.screenshot(path=str(served.shots / "test_drain.readme.png"), full_page=True)
    finally:
        page.goto(f"{served.ui}/providers")
        page.locator("tr[data-provider=alpha] button", has_text="Put back").click()
        page.locator("tr[data-provider=alpha] .badge", has_text="active").wait_for()
    assert answer() == "alpha says: who"
    sdk.close()


@pytest.mark.readme_shot
def test_overview(page: Any, served: ConsoleServer) -> None:
    sdk = openai.OpenAI(base_url=f"{served.root}/v1", api_key=MASTER, max_retries=0)
    for i in range(5):
        sdk.chat.completions.create(model="beta-only", messages=[{"role": "user", "content": f"warm {i}"}])
    sdk.close()
    log_in(page, served)
    page.locator("#tiles .tile").first.wait_for()
    assert page.locator("#chart-rps polyline").count() == 1
    page.locator("#unhealthy", has_text="Every provider is active").wait_for()
    tiles = page.locator("#tiles").inner_text()
    assert "Requests today" in tiles and "Spend today" in tiles
    # The last day, as well as the last hour: the charts are drawn again over the chosen window.
    with page.expect_response(lambda r: "/admin/stats?window=24h" in r.url) as stats:
        page.select_option("#window", "24h")
    day = stats.value.json()
    assert day["step_s"] == 24 * 3600 / 60 and sum(p["requests"] or 0 for p in day["series"]) >= 5
    page.locator("#chart-rps polyline").wait_for()


@pytest.mark.readme_shot
def test_usage(page: Any, served: ConsoleServer) -> None:
    sdk = openai.OpenAI(base_url=f"{served.root}/v1", api_key=MASTER, max_retries=0)
    sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "count me"}])
    sdk.close()
    log_in(page, served)
    page.click("nav >> text=Usage")
    row = page.locator("#usage tbody tr", has_text="chat")
    deadline = time.monotonic() + 10
    while not row.count() and time.monotonic() < deadline:
        page.click("#usage-form button[type=submit]")
        page.wait_for_timeout(300)
    assert row.count() == 1
    assert page.locator("#chart-usage rect").count() >= 1
    with page.expect_download() as download:
        page.click("#csv")
    text = Path(download.value.path()).read_text()
    assert text.splitlines()[0].startswith("group,requests,errors")
    assert any(line.startswith("chat,") for line in text.splitlines())


@pytest.mark.readme_shot
def test_config(page: Any, served: ConsoleServer) -> None:
    log_in(page, served)
    page.click("nav >> text=Config")
    page.locator("#config", has_text="providers").wait_for()
    shown = page.locator("#config").inner_text()
    assert "sk-alpha-provider-secret" not in shown and MASTER not in shown
    page.click("#validate")
    page.locator("#config-status", has_text="valid").wait_for()
    page.click("#reload")
    page.locator("#config-status", has_text="reloaded").wait_for()


def test_logout_ends_the_session(page: Any, served: ConsoleServer) -> None:
    log_in(page, served)
    page.click("text=Log out")
    page.wait_for_url(f"{served.ui}/login")
    page.goto(f"{served.ui}/providers")
    page.wait_for_url(f"{served.ui}/login")
    status = page.evaluate("fetch('/admin/providers').then(r => r.status)")
    assert status == 401


def test_a_wrong_key_does_not_log_in(page: Any, served: ConsoleServer) -> None:
    page.goto(f"{served.ui}/")
    page.fill("input[name=key]", "sk-not-the-master-key-000000")
    page.click("button[type=submit]")
    page.locator(".error", has_text="cannot open the console").wait_for()
    page.goto(f"{served.ui}/keys")
    page.wait_for_url(f"{served.ui}/login")


def test_probe_now(page: Any, served: ConsoleServer) -> None:
    """Probe now runs a health probe at once and the page shows its result."""
    log_in(page, served)
    page.goto(f"{served.ui}/providers")
    beta = page.locator("tr[data-provider=beta]")
    beta.wait_for()
    before = len(served.beta.requests)
    beta.locator("button", has_text="Probe now").click()
    # health_checks.interval is an hour: only the button probes. The row may already say
    # "ago" from the probe at start, so wait for the probe itself to reach the upstream.
    deadline = time.monotonic() + 10
    while len(served.beta.requests) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(served.beta.requests) > before
    beta.locator("td", has_text="ago").wait_for()
    assert beta.locator("td").nth(8).inner_text().startswith("ok ")


def test_edit_a_key(page: Any, served: ConsoleServer) -> None:
    """Budget, limits, allowed models and expiry edited in the console hold for the key's next call."""
    created = served.admin("POST", "/admin/keys", json={"name": f"edit-{uuid.uuid4().hex[:6]}"}).json()
    sdk = openai.OpenAI(base_url=f"{served.root}/v1", api_key=created["key"], max_retries=0)
    assert sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "allowed"}]).choices
    log_in(page, served)
    page.goto(f"{served.ui}/keys")
    row = page.locator(f"tr[data-key='{created['name']}']")
    row.locator("button", has_text="Edit").click()
    row.locator("input[name=budget]").fill("7")
    row.locator("input[name=rpm]").fill("30")
    row.locator("input[name=models]").fill("gpt-4o*, o3")
    row.locator("input[name=expires]").fill("30d")
    row.locator("form.edit button[type=submit]").click()
    page.locator(f"tr[data-key='{created['name']}'] td", has_text="30 rpm").wait_for()
    shown = page.locator(f"tr[data-key='{created['name']}']").inner_text()
    assert "of $7.00" in shown and "gpt-4o*, o3" in shown and "never" not in shown
    key = served.admin("GET", f"/admin/keys/{created['id']}").json()
    assert (key["budget_usd"], key["rpm"], key["models"]) == (7.0, 30, ["gpt-4o*", "o3"])
    assert key["expires_at"] is not None
    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "not allowed"}])
    sdk.close()
