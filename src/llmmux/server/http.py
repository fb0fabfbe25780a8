"""Minimal ASGI request and response helpers: no framework on the hot path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from ..bounds import header_value
from ..errors import BodyTooLarge, InvalidRequest, TooDeeplyNested
from ..events import CallContext, ClientApi
from ..keys import VirtualKey
from ..masking import Masker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


NO_PARAMS: Mapping[str, str] = MappingProxyType({})
MAX_LOGGED_MODEL = 256
"""The most of a refused request's model name kept for its log line."""
_PATTERNS_ONLY = Masker()  # for a Request made outside an App: masks credential shapes only


class ClientDisconnected(Exception):
    """The client went away before its request was read."""


class Request:
    """One HTTP request; `key`, `key_id` and `admin` are set by authentication, `routed` once routing has it.

    `admin`: the master key, or a virtual key with the `admin` scope. `masker` scrubs what
    is sent back when a stream fails in-band. `model` is the body's `model` once `json()`
    has read it, so a request refused before routing (a malformed message, say) is still
    logged under the model it asked for.
    """

    __slots__ = (
        "_headers",
        "admin",
        "key",
        "key_id",
        "masker",
        "max_body",
        "model",
        "params",
        "payload",
        "receive",
        "request_id",
        "routed",
        "scope",
        "started",
        "started_perf",
    )

    def __init__(
        self, scope: Scope, receive: Receive, max_body: int, request_id: str, masker: Masker | None = None
    ) -> None:
        self.started = time.time()
        self.started_perf = time.perf_counter()
        self.scope = scope
        self.receive = receive
        self.max_body = max_body
        self.request_id = request_id
        self._headers: dict[bytes, bytes] | None = None
        self.key: VirtualKey | None = None
        self.key_id: str | None = None
        self.admin = False
        self.masker = masker or _PATTERNS_ONLY
        self.routed = False
        self.model = ""
        self.params: Mapping[str, str] = NO_PARAMS  # what the path table matched in the path: {"id": ...}
        self.payload: bytes | None = None  # the body once read, for body logging (a reference, not a copy)

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    def header(self, name: bytes) -> bytes | None:
        if self._headers is None:
            self._headers = dict(self.scope["headers"])
        return self._headers.get(name)

    def context(self, client_api: ClientApi) -> CallContext:
        """The call's context for routing; from here on the pipeline publishes this request's record."""
        directive = cache_directive(self.header(b"x-llmmux-cache"), self.header(b"cache-control"))
        self.routed = True
        return CallContext(
            self.request_id,
            client_api,
            self.key_id,
            self.started,
            self.started_perf,
            headers=self.scope["headers"],
            query=self.scope.get("query_string", b"").decode("latin-1"),
            body=self.payload,
            method=self.method,
            path=self.path,
            cache_directive=directive,
        )

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.scope.get("query_string", b"").decode("latin-1")))

    async def body(self) -> bytes:
        declared = self.header(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise BodyTooLarge(f"The request body is over the {self.max_body}-byte limit.")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge(f"The request body is over the {self.max_body}-byte limit.")
            chunks.append(chunk)
            if not message.get("more_body", False):
                self.payload = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                return self.payload

    async def json(self) -> Any:
        data = await self.body()
        try:
            value = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise InvalidRequest(
                "We could not parse the JSON body of your request. The body must be valid JSON."
            ) from None
        except RecursionError:
            raise TooDeeplyNested() from None
        model = value.get("model") if isinstance(value, dict) else None
        if isinstance(model, str):
            self.model = model[:MAX_LOGGED_MODEL]
        return value


def cache_directive(ours: bytes | None, standard: bytes | None) -> str | None:
    """What the client asks of the response cache: `x-llmmux-cache: skip | refresh`, else
    `Cache-Control: no-cache` (refresh: answer fresh, store it), `no-store` (do not store), both (skip).
    Any other x-llmmux-cache value is "invalid": a route that caches refuses it with a 400.
    """
    if ours is not None:
        value = ours.strip().lower()
        return value.decode() if value in (b"skip", b"refresh") else "invalid"
    if standard is None:
        return None
    tokens = {t.strip() for t in standard.lower().split(b",")}
    no_cache, no_store = b"no-cache" in tokens or b"max-age=0" in tokens, b"no-store" in tokens
    if no_cache and no_store:
        return "skip"
    return "refresh" if no_cache else "no-store" if no_store else None


async def send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    # Under `llmmux serve`, `send` is the server's response cycle (server/cycle.py), which
    # takes a whole response in one call; under any other ASGI server, the two messages.
    whole = getattr(getattr(send, "__self__", None), "send_whole", None)
    if whole is not None and whole(status, headers, body):
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header_list(base: list[tuple[bytes, bytes]], extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """`base` plus `extra`, whose values may carry client-chosen names (see `bounds.header_value`)."""
    return base + [(k.encode("ascii"), header_value(v)) for k, v in extra.items()]


class CancelOnDisconnect:
    """Cancels the body of an `async with` block when the client disconnects.

    ASGI servers drop a response silently once the client has gone; only `receive()` says
    so. Cancelling stops reading the upstream, which releases it. With `after`, watching
    starts only once the block has run that long: a quick answer pays for a timer (about
    1 µs), not for a watching task; a slow one (a local model generating) is still stopped.
    With `cancel_if`, a disconnect cancels only when it says so at that moment.
    """

    __slots__ = ("_after", "_cancel_if", "_receive", "_task", "_timer", "_watcher", "disconnected")

    def __init__(self, receive: Receive, after: float = 0.0, cancel_if: Callable[[], bool] | None = None) -> None:
        self._receive = receive
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Future[None] | None = None
        self.disconnected = False
        self._after = after
        self._cancel_if = cancel_if

    async def __aenter__(self) -> CancelOnDisconnect:
        self.start()
        return self

    def start(self) -> None:
        """What `async with` does on entry; on the hot path, without a coroutine for it (and `stop`)."""
        self._task = asyncio.current_task()
        if self._after > 0:
            self._timer = asyncio.get_running_loop().call_later(self._after, self._start_watching)
        else:
            self._start_watching()

    def _start_watching(self) -> None:
        self._timer = None
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                if self._cancel_if is None or self._cancel_if():
                    self.disconnected = True
                    if self._task is not None:
                        self._task.cancel()
                return

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        return self.stop(cancelled=kind is asyncio.CancelledError)

    def stop(self, *, cancelled: bool = False) -> bool:
        """Stop watching (again: a no-op); True when `cancelled` was this watch's doing, to be swallowed."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if cancelled and self.disconnected and self._task is not None:
            self._task.uncancel()
            self._task = None
            return True
        return False
