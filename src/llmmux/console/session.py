"""Console sessions: signed cookies, CSRF tokens tied to them, logout and expiry.

A session is a signed token, not a row anywhere: every worker process can check it with
nothing shared but the master key, from which the signing secret is derived (rotating the
master key ends every session). The token holds its expiry, a random nonce and who logged
in ("master", or the id of a key with the admin scope). The CSRF token is the nonce's own
HMAC, so a page gets it from the server and a cross-site form cannot know it.

Logging out forgets the session in this process (by its reference, a hash of the nonce),
clears the cookie, and tells every other process: through the shared store with several
workers or instances on Redis (`Console.session`), and through the ledger's audit log to
instances that share only the ledger (`logouts.LedgerLogouts`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass

COOKIE = "llmmux_console"
LOGIN_COOKIE = "llmmux_console_login"  # the login form's own CSRF token (double submit)
CSRF_HEADER = b"x-csrf-token"
MAX_REVOKED = 100_000
_CONTEXT = b"llmmux console sessions v1"


@dataclass(frozen=True, slots=True)
class Session:
    who: str  # "master" or a key id
    nonce: str
    expires: float
    csrf: str


class Sessions:
    """Issues and checks session tokens for one master key.

    sessions = Sessions(master_key, ttl_s=8 * 3600)
    token, session = sessions.issue("master")
    sessions.check(token)  -> Session | None
    """

    def __init__(self, master_key: str, ttl_s: float, clock: object = time.time) -> None:
        self._secret = hmac.new(master_key.encode(), _CONTEXT, hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self._clock = clock
        self._revoked: dict[str, float] = {}

    def _now(self) -> float:
        return self._clock()  # type: ignore[operator, no-any-return]

    def issue(self, who: str) -> tuple[str, Session]:
        nonce = os.urandom(16).hex()
        expires = round(self._now() + self.ttl_s)
        payload = base64.urlsafe_b64encode(f"{expires}.{nonce}.{who}".encode()).decode().rstrip("=")
        token = f"{payload}.{self._sign(payload.encode())}"
        return token, Session(who, nonce, expires, self.csrf(nonce))

    def check(self, token: str | None) -> Session | None:
        """The session a cookie holds, or None when it is forged, expired or logged out."""
        if not token or token.count(".") != 1:
            return None
        payload, signature = token.split(".")
        if not hmac.compare_digest(signature, self._sign(payload.encode())):
            return None
        try:
            expires, nonce, who = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split(".", 2)
            deadline = float(expires)
        except (ValueError, UnicodeDecodeError):
            return None
        if deadline <= self._now() or (self._revoked and self.reference(nonce) in self._revoked):
            return None
        return Session(who, nonce, deadline, self.csrf(nonce))

    def csrf(self, nonce: str) -> str:
        return self._sign(b"csrf:" + nonce.encode())[:32]

    def csrf_ok(self, session: Session, supplied: bytes | str | None) -> bool:
        if not supplied:
            return False
        text = supplied.decode("latin-1") if isinstance(supplied, bytes) else supplied
        return hmac.compare_digest(text, session.csrf)

    def revoke(self, session: Session) -> None:
        self.revoke_reference(self.reference(session.nonce), session.expires)

    def revoke_reference(self, reference: str, expires: float) -> None:
        """Refuse the session `reference` names from now until `expires` (when it would have ended anyway)."""
        now = self._now()
        if len(self._revoked) >= MAX_REVOKED:
            self._revoked = {n: t for n, t in self._revoked.items() if t > now}
        self._revoked[reference] = max(expires, self._revoked.get(reference, 0.0))

    @staticmethod
    def reference(nonce: str) -> str:
        """What names a session where others may read it (the audit log): its nonce, hashed."""
        return hashlib.sha256(nonce.encode()).hexdigest()[:32]

    def _sign(self, data: bytes) -> str:
        return hmac.new(self._secret, data, hashlib.sha256).hexdigest()


def cookie_header(name: str, value: str, *, max_age: int, secure: bool, path: str) -> tuple[bytes, bytes]:
    """A Set-Cookie the browser keeps from scripts (HttpOnly) and from other sites (SameSite=Strict)."""
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Strict"]
    if secure:
        parts.append("Secure")
    return b"set-cookie", "; ".join(parts).encode("latin-1")


def read_cookie(header: bytes | None, name: str) -> str | None:
    if not header:
        return None
    for part in header.decode("latin-1").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
