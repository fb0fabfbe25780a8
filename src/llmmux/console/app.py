"""Serves `/ui`: the login form, the pages, their two assets, and the session behind them.

Every page is rendered here as HTML with empty tables and chart frames; `console.js` fills
them from the admin API with the session cookie (and the CSRF header on every change). So
the console can show nothing the admin API does not, and nothing is served without a
session but the login form and the stylesheet.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from ..config.model import UIConfig
from ..keys import VirtualKey
from ..ledger.store import Store
from ..server.http import Request, Send, send_bytes
from ..shared.client import Shared, SharedDown
from . import pages
from .gateway_throttle import GatewayLoginThrottle
from .logouts import LedgerLogouts
from .session import COOKIE, CSRF_HEADER, LOGIN_COOKIE, Session, Sessions, cookie_header, read_cookie

log = logging.getLogger("llmmux.console")

MAX_LOGIN_BODY = 4096
# The pages run only the console's own script and style: injected markup (a model name, a
# prompt) cannot load or run anything, and no other site may frame the console.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
HTML = (b"content-type", b"text/html; charset=utf-8")
ASSET_TYPES = {"css": b"text/css; charset=utf-8", "js": b"text/javascript; charset=utf-8"}
PUBLIC_ASSETS = frozenset({"console.css"})  # the login form's style; holds nothing but style

Authenticate = Callable[[bytes], Awaitable[VirtualKey | None]]


def is_admin(key: VirtualKey) -> bool:
    """May this virtual key log in to the console and use the admin API?

    The hook key scopes plug into: a key with the `admin` scope is an administrator. Until
    keys carry scopes, none is, and only the master key logs in.
    """
    return "admin" in (getattr(key, "scopes", None) or ())


class Console:
    """The `/ui` pages for one App. `handle` serves a request under `settings.path`."""

    def __init__(
        self,
        settings: UIConfig,
        master_key: str | None,
        authenticate: Authenticate,
        find_key: Callable[[str], VirtualKey | None],
        shared: Shared | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.base = settings.path
        self._master_key = master_key.encode() if master_key else None
        self.sessions = Sessions(master_key, settings.session_ttl_s) if master_key else None
        self._authenticate = authenticate
        self._find_key = find_key
        self._shared = shared  # where logouts are told to every worker and instance
        # ... and to the instances that share only the ledger's database
        self.logouts = LedgerLogouts(store, self.sessions) if store is not None and self.sessions is not None else None
        self._assets: dict[str, bytes] = {}
        self.throttle = GatewayLoginThrottle(settings.login, shared)  # one count for every worker

    async def start(self) -> None:
        if self.logouts is not None:
            await self.logouts.start()

    async def aclose(self) -> None:
        if self.logouts is not None:
            await self.logouts.aclose()

    def owns(self, path: str) -> bool:
        return path == self.base or path.startswith(self.base + "/")

    # -- sessions, for the admin API too --

    async def session(self, request: Request) -> Session | None:
        """The request's valid console session, if any (a key's session ends when the key stops being admin)."""
        if self.sessions is None:
            return None
        found = self.sessions.check(read_cookie(request.header(b"cookie"), COOKIE))
        if found is None or await self._logged_out_elsewhere(found):
            return None
        if found.who == "master":
            return found
        key = self._find_key(found.who)
        return found if key is not None and key.state(time.time()) == "active" and is_admin(key) else None

    async def _logged_out_elsewhere(self, session: Session) -> bool:
        """Did another worker or instance log this session out? (Only the console asks: off the request path.)"""
        if self._shared is None:
            return False
        try:
            revoked = await self._shared.call(self._shared.store.get_blob(_revoked(session)))
        except SharedDown:
            return False  # the shared store is away: this process's own logouts still hold
        if revoked is not None:
            assert self.sessions is not None
            self.sessions.revoke(session)  # remembered here, so the next check asks nobody
        return revoked is not None

    async def _log_out_everywhere(self, session: Session) -> None:
        assert self.sessions is not None
        self.sessions.revoke(session)
        if self.logouts is not None:
            actor = "console" if session.who == "master" else f"console, key:{session.who}"
            try:
                await self.logouts.record(session, actor)
            except Exception as exc:  # the ledger is away: this process and the shared store still know
                log.warning("could not record a console logout in the ledger (%s)", type(exc).__name__)
        if self._shared is None:
            return
        ttl = max(1.0, session.expires - time.time())
        with contextlib.suppress(SharedDown):
            await self._shared.call(self._shared.store.put_blob(_revoked(session), b"1", ttl))

    def csrf_ok(self, request: Request, session: Session) -> bool:
        assert self.sessions is not None
        return self.sessions.csrf_ok(session, request.header(CSRF_HEADER))

    # -- pages --

    async def handle(self, request: Request, send: Send) -> None:
        sub = request.path[len(self.base) :].strip("/")
        method = request.method
        if sub.startswith("assets/") and method in ("GET", "HEAD"):
            await self._asset(request, send, sub.removeprefix("assets/"))
        elif sub == "login" and method == "POST":
            await self._login(request, send)
        elif sub == "login":
            await self._login_page(request, send)
        elif sub == "logout" and method == "POST":
            await self._logout(request, send)
        elif method not in ("GET", "HEAD"):
            await self._html(send, 405, pages.message_page(self.base, "Method not allowed", "The console only reads."))
        else:
            await self._page(request, send, sub)

    async def _page(self, request: Request, send: Send, sub: str) -> None:
        session = await self.session(request)
        if session is None:
            await self._redirect(send, f"{self.base}/login")
            return
        page, _, detail = sub.partition("/")
        page = page or "overview"
        if page not in pages.PAGES or (detail and not pages.PAGES[page].detail):
            await self._html(send, 404, pages.message_page(self.base, "Not found", "No such console page."))
            return
        await self._html(send, 200, pages.render(self.base, page, session.csrf, detail))

    async def _asset(self, request: Request, send: Send, name: str) -> None:
        kind = ASSET_TYPES.get(name.rpartition(".")[2])
        known = name in ("console.css", "console.js") or pages.page_script(name.removesuffix(".js")) == name
        if kind is None or not known or (name not in PUBLIC_ASSETS and await self.session(request) is None):
            await self._html(send, 404, pages.message_page(self.base, "Not found", "No such asset."))
            return
        data = self._assets.get(name)
        if data is None:
            data = self._assets[name] = pages.ASSETS.joinpath(name).read_bytes()
        headers = [(b"content-type", kind), *SECURITY_HEADERS]
        await send_bytes(send, 200, data, headers)

    # -- login and logout --

    async def _login_page(
        self,
        request: Request,
        send: Send,
        error: str = "",
        status: int = 200,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if error == "" and await self.session(request) is not None:
            await self._redirect(send, f"{self.base}/")
            return
        token = read_cookie(request.header(b"cookie"), LOGIN_COOKIE)
        if not token or len(token) != 32 or not token.isalnum():
            token = _random_token()
        cookie = cookie_header(LOGIN_COOKIE, token, max_age=3600, secure=_tls(request), path=self.base)
        body = pages.login_page(self.base, token, error, enabled=self.sessions is not None)
        await send_bytes(send, status, body, [HTML, *SECURITY_HEADERS, cookie, *(extra or [])])

    async def _login(self, request: Request, send: Send) -> None:
        client = _client_address(request)
        # Checked before the key is: a locked-out guesser learns nothing from the answer.
        wait = await self.throttle.wait(client)
        if wait > 0:
            await self._locked_out(request, send, wait)
            return
        form = await _form(request)
        expected = read_cookie(request.header(b"cookie"), LOGIN_COOKIE)
        if not expected or not hmac.compare_digest(form.get("csrf", ""), expected):
            await self._login_page(request, send, "The form expired; try again.", 403)
            return
        who = await self._who(form.get("key", "").strip().encode())
        if who is None or self.sessions is None:
            wait = await self.throttle.failed(client)
            if wait > 0:
                await self._locked_out(request, send, wait)
            else:
                await self._login_page(request, send, "That key cannot open the console.", 401)
            return
        await self.throttle.succeeded(client)
        token, _ = self.sessions.issue(who)
        cookie = cookie_header(COOKIE, token, max_age=int(self.settings.session_ttl_s), secure=_tls(request), path="/")
        await self._redirect(send, f"{self.base}/", [cookie])

    async def _locked_out(self, request: Request, send: Send, wait: float) -> None:
        seconds = max(1, math.ceil(wait))
        error = f"Too many failed logins: try again in {seconds} s."
        await self._login_page(request, send, error, 429, [(b"retry-after", str(seconds).encode())])

    async def _who(self, secret: bytes) -> str | None:
        if not secret:
            return None
        if self._master_key is not None and hmac.compare_digest(secret, self._master_key):
            return "master"
        key = await self._authenticate(secret)
        return key.id if key is not None and key.state(time.time()) == "active" and is_admin(key) else None

    async def _logout(self, request: Request, send: Send) -> None:
        session = await self.session(request)
        form = await _form(request)
        if session is None:
            await self._redirect(send, f"{self.base}/login")
            return
        assert self.sessions is not None
        if not self.sessions.csrf_ok(session, form.get("csrf")):
            await self._html(send, 403, pages.message_page(self.base, "Forbidden", "Missing or wrong CSRF token."))
            return
        await self._log_out_everywhere(session)
        cleared = cookie_header(COOKIE, "", max_age=0, secure=_tls(request), path="/")
        await self._redirect(send, f"{self.base}/login", [cleared])

    # -- responses --

    @staticmethod
    async def _html(send: Send, status: int, body: bytes) -> None:
        await send_bytes(send, status, body, [HTML, *SECURITY_HEADERS])

    @staticmethod
    async def _redirect(send: Send, location: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"location", location.encode()), *SECURITY_HEADERS, *(extra or [])]
        await send_bytes(send, 303, b"", headers)


def _tls(request: Request) -> bool:
    return request.scope.get("scheme") == "https"


def _revoked(session: Session) -> str:
    return f"console.revoked.{session.nonce}"


def _client_address(request: Request) -> str:
    """The peer's address (a proxy in front sets it from X-Forwarded-For with uvicorn's --proxy-headers)."""
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


def _random_token() -> str:
    return os.urandom(16).hex()


async def _form(request: Request) -> dict[str, str]:
    data = await request.body()
    if len(data) > MAX_LOGIN_BODY:
        return {}
    return dict(parse_qsl(data.decode("utf-8", errors="replace")))
