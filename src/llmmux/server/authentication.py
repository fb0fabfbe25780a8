"""Who is calling: the master key, a virtual key, or a console session, checked against what the
path asks (`dispatch.Access`) before its handler runs.

    auth = Authentication(master_key="sk-master", keys=key_service, console=console)
    await auth.check(request, Access.KEY)      # sets request.admin / request.key, or raises

With no master key the gateway is open (virtual keys still identify their callers and their
limits hold). The secret is compared in constant time; known virtual keys cost a hash and a
dict lookup (`KeyService.authenticate`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from ..console import Console, is_admin
from ..errors import AuthenticationFailed, PermissionDenied
from ..keys import METRICS_SCOPE, VirtualKey
from .dispatch import Access
from .http import Request

MISSING = "Missing API key: send 'Authorization: Bearer <key>'."
ADMIN_PATHS = ("/admin/", "/admin")  # where a console session stands in for the master key
FindKey = Callable[[bytes], Awaitable[VirtualKey | None]]
CheckIdentity = Callable[[VirtualKey], None]


class Authentication:
    """The server's key middleware: one `check` per request, ahead of the handler."""

    def __init__(
        self,
        master_key: str | None,
        find_key: FindKey,
        check_identity: CheckIdentity,
        *,
        console: Console | None = None,
        metrics_public: bool = False,
    ) -> None:
        self._master_key = master_key.encode() if master_key else None
        self._find_key = find_key
        self._check_identity = check_identity  # expired, revoked: refused with the key's own reason
        self.console = console
        # With a master key set, /metrics asks for it (or a metrics-scoped key) unless opened explicitly.
        self.metrics_open = self._master_key is None or metrics_public

    @property
    def open(self) -> bool:
        """No master key: anyone may call, and the admin API is off."""
        return self._master_key is None

    async def check(self, request: Request, access: Access) -> None:
        if access is Access.OPEN or (access is Access.METRICS and self.metrics_open):
            return
        await self._identify(request)
        if access is Access.KEY:
            return
        if access is Access.METRICS:
            if not (request.admin or (request.key is not None and request.key.has_scope(METRICS_SCOPE))):
                raise PermissionDenied("/metrics needs the master key or a key with the 'metrics' scope.")
        elif access is Access.ADMIN and self.open and request.key is None:
            raise PermissionDenied("The admin API is off: set server.master_key to use it.")
        elif not (request.admin or (access is Access.MANAGE and self.open and request.key is None)):
            raise PermissionDenied(
                f"{request.path} changes the gateway or a backend: it needs the master key or a key with "
                "the 'admin' scope."
            )

    async def _identify(self, request: Request) -> None:
        """The master key (admin), else a virtual key; with no master key set, the gateway is open."""
        supplied = _supplied_key(request)
        if self._master_key is not None and supplied and hmac.compare_digest(supplied, self._master_key):
            request.admin = True
            return
        key = await self._find_key(supplied) if supplied else None
        if key is not None:
            request.key, request.key_id = key, key.id  # so a refusal is recorded against the key
            self._check_identity(key)
            request.admin = is_admin(key)
            return
        if self._master_key is None:
            return
        if not supplied and self.console is not None and request.path.startswith(ADMIN_PATHS):
            await self._console_session(request)
            return
        raise AuthenticationFailed(MISSING if not supplied else "Incorrect API key provided.")

    async def _console_session(self, request: Request) -> None:
        """An admin API call from the console: its session cookie, and on every change the CSRF header."""
        assert self.console is not None
        session = await self.console.session(request)
        if session is None:
            raise AuthenticationFailed(MISSING)
        if request.method not in ("GET", "HEAD") and not self.console.csrf_ok(request, session):
            raise PermissionDenied("This change needs the console's CSRF token in the X-CSRF-Token header.")
        request.admin = True


def _supplied_key(request: Request) -> bytes:
    supplied = request.header(b"authorization") or b""
    if supplied[:7].lower() == b"bearer ":
        return supplied[7:].strip()
    return request.header(b"x-api-key") or b""
