"""The console in front of `llmmux serve --workers 2`: one live tail and one set of sessions for the whole gateway.

Each worker owns its own SO_REUSEPORT socket, so the kernel spreads fresh connections over
both: a tail opened on one worker must still show what the other served, and a logout on
one must end the session on the other.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from llmmux.console.session import COOKIE
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

from .conftest import MASTER, ConsoleServer, console_config, log_in

FRESH_CONNECTIONS = 16  # all on one worker by chance: 1 in 2**15
WITHIN_S = 2.0


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    folder = tmp_path_factory.mktemp("console-workers")
    with FakeOpenAI(echo_prefix="alpha says: ") as alpha, FakeOpenAI(echo_prefix="beta says: ") as beta:
        config = folder / "llmmux.yaml"
        config.write_text(yaml.safe_dump(console_config(alpha, beta, folder / "llmmux.db")))
        port = free_port()
        process = start_serve(config, port, ["--workers", "2"])
        try:
            wait_healthy(port, process, limit=60)
            root = f"http://127.0.0.1:{port}"
            _wait_for_both_workers(root)
            shots = folder / "screenshots"
            shots.mkdir()
            yield ConsoleServer(root, alpha, beta, config, shots)
        finally:
            stop_serve(process)


def _wait_for_both_workers(root: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = httpx.get(f"{root}/admin/instances", headers={"authorization": f"Bearer {MASTER}"}, timeout=5)
        if found.status_code == 200 and len(found.json()["data"]) == 2:
            return
        time.sleep(0.2)
    raise AssertionError("the two workers never both registered with the holder")


@pytest.fixture
def worker_page(browser: Any, two_workers: ConsoleServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        opened.screenshot(path=str(two_workers.shots / f"{request.node.name}.png"), full_page=True)
        context.close()


def _chat_on_fresh_connection(root: str, word: str) -> str:
    reply = httpx.post(
        f"{root}/v1/chat/completions",
        headers={"authorization": f"Bearer {MASTER}"},
        json={"model": "chat", "messages": [{"role": "user", "content": word}]},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return reply.headers["x-request-id"]


def test_the_live_tail_shows_the_requests_of_every_worker(worker_page: Any, two_workers: ConsoleServer) -> None:
    page = worker_page
    log_in(page, two_workers)
    page.goto(f"{two_workers.ui}/requests")
    page.locator("#tail-state", has_text="live").wait_for()
    page.wait_for_timeout(300)  # the tail's worker has told the other one it is watching
    sent = [
        _chat_on_fresh_connection(two_workers.root, f"hello {uuid.uuid4().hex[:8]}") for _ in range(FRESH_CONNECTIONS)
    ]
    last_sent = time.monotonic()
    for request_id in sent:
        page.locator(f"tr[data-request-id='{request_id}']").wait_for(timeout=WITHIN_S * 1000 + 500)
    assert time.monotonic() - last_sent < WITHIN_S + 0.5
    shown = page.locator("#requests tbody tr[data-instance]").evaluate_all(
        "rows => rows.map(r => [r.dataset.requestId, r.dataset.instance])"
    )
    served_by = {instance for request_id, instance in shown if request_id in sent}
    assert len(served_by) == 2, f"every request was served by {served_by}: the test proves nothing"
    assert len([row for row in shown if row[0] in sent]) == FRESH_CONNECTIONS  # each once, not once per worker


def test_a_logout_on_one_worker_ends_the_session_on_every_worker(worker_page: Any, two_workers: ConsoleServer) -> None:
    page = worker_page
    log_in(page, two_workers)
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == COOKIE)
    copied = {COOKIE: cookie}
    before = [
        httpx.get(f"{two_workers.root}/admin/providers", cookies=copied, timeout=10).status_code for _ in range(4)
    ]
    assert before == [200] * 4
    page.click("header form.logout button")
    page.wait_for_url(f"{two_workers.ui}/login")
    # Each call on a new connection, so both workers are asked; neither may take the copied cookie.
    pages = [httpx.get(f"{two_workers.ui}/keys", cookies=copied, timeout=10) for _ in range(FRESH_CONNECTIONS)]
    assert [(p.status_code, p.headers.get("location")) for p in pages] == [(303, "/ui/login")] * FRESH_CONNECTIONS
    calls = [
        httpx.get(f"{two_workers.root}/admin/keys", cookies=copied, timeout=10).status_code
        for _ in range(FRESH_CONNECTIONS)
    ]
    assert calls == [401] * FRESH_CONNECTIONS
    # A new login still works on either worker.
    log_in(page, two_workers)
    assert page.locator("header nav").is_visible()
