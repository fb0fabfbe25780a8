"""Nothing on /ui or /admin without a session or key, CSRF on every change, no secret in any page."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmmux.console.pages import PAGES
from llmmux.console.session import COOKIE, Sessions

from .conftest import ALPHA_KEY, MASTER, ConsoleServer

PAGE_PATHS = ["", "/", *(f"/{p}" for p in PAGES), "/requests/01a2b3c4", "/assets/console.js", "/nope"]
READS = [
    "/admin/keys",
    "/admin/keys/k1",
    "/admin/usage",
    "/admin/usage?format=csv",
    "/admin/requests",
    "/admin/requests/01a2b3c4",
    "/admin/requests/stream",
    "/admin/providers",
    "/admin/routes",
    "/admin/config",
    "/admin/config/validate",
    "/admin/stats",
    "/admin/models",
]
CHANGES: list[tuple[str, str, Any]] = [
    ("POST", "/admin/keys", {"name": "csrf-probe"}),
    ("PATCH", "/admin/keys/k1", {"rpm": 1}),
    ("DELETE", "/admin/keys/k1", None),
    ("POST", "/admin/providers/alpha/probe", None),
    ("POST", "/admin/providers/alpha/drain", None),
    ("POST", "/admin/providers/alpha/restore", None),
    ("POST", "/admin/try", {"model": "chat", "prompt": "csrf"}),
    ("POST", "/admin/config/reload", None),
    ("POST", "/admin/models/m1/load", None),
]


def logged_in(served: ConsoleServer) -> tuple[httpx.Client, str]:
    """A client holding a console session, and the session's CSRF token (from the page, as the script reads it)."""
    client = httpx.Client(base_url=served.root, timeout=10)
    form = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', form.text)
    assert token is not None
    done = client.post("/ui/login", data={"key": MASTER, "csrf": token.group(1)})
    assert done.status_code == 303 and done.headers["location"] == "/ui/"
    page = client.get("/ui/keys")
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.text)
    assert csrf is not None
    return client, csrf.group(1)


@pytest.fixture
def session(served: ConsoleServer) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = logged_in(served)
    try:
        yield client, csrf
    finally:
        client.close()


def test_every_console_page_refuses_without_a_session(served: ConsoleServer) -> None:
    for path in PAGE_PATHS:
        response = httpx.get(f"{served.ui}{path}", timeout=10)
        assert response.status_code in (303, 404), path
        if response.status_code == 303:
            assert response.headers["location"] == "/ui/login", path
        assert b"<table" not in response.content and b"console.js" not in response.content, path
    # The login form itself, and its stylesheet, are all there is to see.
    assert httpx.get(f"{served.ui}/login").status_code == 200
    assert httpx.get(f"{served.ui}/assets/console.css").status_code == 200


def test_every_admin_route_refuses_without_a_session_or_key(served: ConsoleServer) -> None:
    for path in READS:
        assert httpx.get(f"{served.root}{path}", timeout=10).status_code == 401, path
    for method, path, body in CHANGES:
        assert httpx.request(method, f"{served.root}{path}", json=body, timeout=10).status_code == 401, path
    # A virtual key (without the admin scope) is no administrator.
    created = served.admin("POST", "/admin/keys", json={"name": "plain-user"})
    assert created.status_code == 201
    user = {"authorization": f"Bearer {created.json()['key']}"}
    for path in READS:
        assert httpx.get(f"{served.root}{path}", headers=user, timeout=10).status_code == 403, path
    # ...nor is a forged or tampered session cookie.
    forged = Sessions("sk-some-other-master-key-000000", 3600).issue("master")[0]
    for cookie in (forged, "abc.def", forged[:-1] + ("0" if forged[-1] != "0" else "1")):
        assert httpx.get(f"{served.root}/admin/keys", cookies={COOKIE: cookie}).status_code == 401
        assert httpx.get(f"{served.ui}/keys", cookies={COOKIE: cookie}).status_code == 303


def test_every_change_needs_the_csrf_token(served: ConsoleServer, session: tuple[httpx.Client, str]) -> None:
    client, csrf = session
    for method, path, body in CHANGES:
        for headers in ({}, {"x-csrf-token": "0" * 32}, {"x-csrf-token": csrf[:-1] + "x"}):
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (method, path, headers)
            assert "CSRF" in response.json()["error"]["message"]
    # Nothing happened: no key was created and alpha is still in rotation.
    names = [k["name"] for k in served.admin("GET", "/admin/keys").json()["data"]]
    assert "csrf-probe" not in names
    alpha = next(p for p in served.admin("GET", "/admin/providers").json()["providers"] if p["name"] == "alpha")
    assert alpha["state"] == "active"
    # With the token, the same session may change things; reads never needed it.
    assert client.get("/admin/providers").status_code == 200
    assert client.post("/admin/providers/alpha/probe", headers={"x-csrf-token": csrf}).status_code == 200


def test_login_and_logout_forms_need_their_csrf_tokens(
    served: ConsoleServer, session: tuple[httpx.Client, str]
) -> None:
    stranger = httpx.post(f"{served.ui}/login", data={"key": MASTER}, timeout=10)
    assert stranger.status_code == 403 and f"{COOKIE}=" not in stranger.headers.get("set-cookie", "")
    client, csrf = session
    refused = client.post("/ui/logout", data={"csrf": "0" * 32})
    assert refused.status_code == 403
    assert client.get("/admin/providers").status_code == 200  # still logged in
    done = client.post("/ui/logout", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/ui/login"
    assert f"{COOKIE}=;" in done.headers["set-cookie"]


def test_a_logged_out_session_is_dead_even_with_its_cookie(served: ConsoleServer) -> None:
    client, csrf = logged_in(served)
    try:
        kept = client.cookies[COOKIE]
        client.post("/ui/logout", data={"csrf": csrf})
    finally:
        client.close()
    assert httpx.get(f"{served.root}/admin/providers", cookies={COOKIE: kept}).status_code == 401
    assert httpx.get(f"{served.ui}/", cookies={COOKIE: kept}).status_code == 303


def test_the_session_cookie_is_httponly_strict_and_not_readable_by_pages(served: ConsoleServer) -> None:
    client = httpx.Client(base_url=served.root)
    token = re.search(r'value="([0-9a-f]{32})"', client.get("/ui/login").text)
    assert token is not None
    cookie = client.post("/ui/login", data={"key": MASTER, "csrf": token.group(1)}).headers["set-cookie"]
    client.close()
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; see the TLS test below


def test_no_secret_in_any_page_or_response(served: ConsoleServer, session: tuple[httpx.Client, str]) -> None:
    client, csrf = session
    # A client that pastes a key into its prompt: the stored body has it masked.
    sent = client.post(
        "/admin/try", json={"model": "chat", "prompt": f"my key is {ALPHA_KEY} ok"}, headers={"x-csrf-token": csrf}
    )
    assert sent.status_code == 200
    request_id = sent.json()["request_id"]
    bodies: list[str] = []
    for path in PAGE_PATHS + ["/login", "/assets/console.css"]:
        bodies.append(client.get(f"/ui{path}").text)
    for path in READS:
        if path != "/admin/requests/stream":
            bodies.append(client.get(path).text)
    for _ in range(50):
        detail = client.get(f"/admin/requests/{request_id}")
        if detail.status_code == 200 and detail.json()["bodies"]:
            break
        time.sleep(0.1)  # the ledger writes in batches
    assert detail.json()["bodies"]["request"] is not None
    bodies.append(detail.text)
    for text in bodies:
        assert MASTER not in text
        assert ALPHA_KEY not in text
        assert client.cookies[COOKIE] not in text
    assert "sk-****" in detail.text or "sk-alp****" in detail.text


async def test_the_cookie_is_secure_over_tls() -> None:
    from llmmux.router import Router
    from llmmux.server.app import App

    router = Router.from_config({"server": {"master_key": MASTER}, "providers": {}, "ledger": {"enabled": False}})
    app = App(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway") as client:
        form = await client.get("/ui/login")
        token = re.search(r'value="([0-9a-f]{32})"', form.text)
        assert token is not None and "Secure" in form.headers["set-cookie"]
        done = await client.post("/ui/login", data={"key": MASTER, "csrf": token.group(1)})
    assert done.status_code == 303
    assert "Secure" in done.headers["set-cookie"] and "HttpOnly" in done.headers["set-cookie"]


def test_sessions_expire_and_survive_nothing_forged() -> None:
    now = [1000.0]
    sessions = Sessions(MASTER, ttl_s=60, clock=lambda: now[0])
    token, session = sessions.issue("master")
    assert sessions.check(token) == session
    assert sessions.csrf_ok(session, session.csrf) and not sessions.csrf_ok(session, "0" * 32)
    now[0] += 59
    assert sessions.check(token) is not None
    now[0] += 2
    assert sessions.check(token) is None
    # Another master key signs differently: rotating the key ends every session.
    other = Sessions("sk-rotated-master-key-123456789", ttl_s=60, clock=lambda: now[0])
    fresh, _ = sessions.issue("master")
    assert other.check(fresh) is None
