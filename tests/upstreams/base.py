"""Building blocks shared by the fake upstream servers used in tests.

A fake upstream is a real HTTP/1.1 server on 127.0.0.1 (keep-alive, chunked
streaming), so the gateway is tested through the same sockets, parsers and
connection pools it uses in production.  It runs on its own event loop in a
background thread: sync tests (urllib, sync SDKs) and async tests (on
pytest-asyncio's loop) can both use it without sharing a loop with it.

What the fake does with each request is a *behaviour*.  Requests get the
server's default behaviour (normally a well-formed reply) unless a test has
scripted a queue of behaviours, consumed one per request.  Behaviours are
plain frozen dataclasses built by the factory functions below, so the same
vocabulary (`status`, `hang`, `drop`, `drop_mid_stream`, ...) serves every
provider's fake; each provider only supplies its routes and wire shapes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NoReturn, Self

import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "Behaviour",
    "Drop",
    "Exchange",
    "FakeUpstream",
    "Hang",
    "HttpError",
    "RecordedRequest",
    "Reply",
    "Status",
    "ToolCall",
    "closed_port_url",
    "drop",
    "drop_mid_stream",
    "hang",
    "malformed",
    "reply",
    "stall_mid_stream",
    "status",
    "tool_call",
    "trickle",
]

GARBAGE_SSE = b'data: {"id": "broken", "choices": [{\n\n'
"""An SSE event whose data is not JSON: what `malformed()` injects."""


# --------------------------------------------------------------------------
# Behaviours
# --------------------------------------------------------------------------


class Behaviour:
    """What the fake does with one request; see the factory functions."""

    __slots__ = ()


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """A function call the fake model makes; `arguments` is JSON text."""

    name: str
    arguments: str = "{}"
    id: str | None = None


@dataclass(frozen=True, kw_only=True)
class Reply(Behaviour):
    """A successful (HTTP 200) answer, possibly delivered badly.

    Content fields left as None are derived from the request by the fake.
    Delivery fields inject faults into an otherwise valid answer; "chunks"
    are SSE events, counting the final `[DONE]`.  A non-stream answer is one
    JSON body: delays are applied once before it, `drop_after` sends half of
    it then drops, `garbage_after` truncates it into invalid JSON.
    """

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    chunks: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_per_chunk: float = 0.0
    stall_after: int | None = None
    stall_seconds: float = 0.0
    drop_after: int | None = None
    garbage_after: int | None = None


@dataclass(frozen=True)
class Status(Behaviour):
    """An HTTP status with a body: None means the provider's error shape."""

    code: int
    body: Mapping[str, Any] | Sequence[Any] | str | bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang(Behaviour):
    """Read the request, send nothing for `seconds` (None: forever), then drop."""

    seconds: float | None = None


@dataclass(frozen=True)
class Drop(Behaviour):
    """Close the connection without a response; `reset` sends a TCP RST."""

    reset: bool = False


def tool_call(name: str, arguments: str | Mapping[str, Any] = "{}", *, id: str | None = None) -> ToolCall:
    """A scripted tool call; mapping arguments are JSON-encoded."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(name=name, arguments=text, id=id)


def reply(
    content: str | None = None,
    *,
    tool_calls: Iterable[ToolCall] = (),
    finish_reason: str | None = None,
    usage: Mapping[str, Any] | None = None,
    chunks: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """A well-formed answer; unset fields are derived from the request."""
    return Reply(
        content=content,
        tool_calls=tuple(tool_calls),
        finish_reason=finish_reason,
        usage=usage,
        chunks=chunks,
        headers=dict(headers or {}),
    )


def status(
    code: int,
    body: Mapping[str, Any] | Sequence[Any] | str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Status:
    """Answer `code`; e.g. `status(429, headers={"Retry-After": "1"})`."""
    return Status(code, body, dict(headers or {}))


def hang(seconds: float | None = None) -> Hang:
    """Accept and read the request, then stay silent (client timeouts)."""
    return Hang(seconds)


def drop(*, reset: bool = False) -> Drop:
    """Close the connection without answering (FIN, or RST with `reset`)."""
    return Drop(reset)


def drop_mid_stream(after_chunks: int = 1, **reply_kw: Any) -> Reply:
    """Send `after_chunks` SSE events, then abort without `[DONE]`."""
    return replace(reply(**reply_kw), drop_after=after_chunks)


def malformed(after_chunks: int = 0, **reply_kw: Any) -> Reply:
    """A 200 whose body is invalid JSON, or a stream with a garbage event."""
    return replace(reply(**reply_kw), garbage_after=after_chunks)


def trickle(delay_per_chunk: float, **reply_kw: Any) -> Reply:
    """A slow stream: wait `delay_per_chunk` seconds before each event."""
    return replace(reply(**reply_kw), delay_per_chunk=delay_per_chunk)


def stall_mid_stream(after_chunks: int, seconds: float, **reply_kw: Any) -> Reply:
    """Send `after_chunks` events, pause `seconds`, then finish normally."""
    return replace(reply(**reply_kw), stall_after=after_chunks, stall_seconds=seconds)


# --------------------------------------------------------------------------
# Requests and responses
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, for asserting what was sent.

    `json` is the parsed body, or None when the body is not JSON.  `peer`
    is the client's (host, port): equal ports mean a reused connection.
    """

    seq: int
    method: str
    path: str
    query: Mapping[str, str]
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any
    peer: tuple[str, int] | None
    received_at: float


RECORD_KEY: web.RequestKey[RecordedRequest] = web.RequestKey("fake_upstream_record", RecordedRequest)
"""Where a request's record is kept, for the response-headers hook."""


class HttpError(Exception):
    """Raised by endpoints to answer with an error status and JSON body."""

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


@dataclass(frozen=True)
class Exchange:
    """What an endpoint needs: the request, its record and the reply to give."""

    request: web.Request
    record: RecordedRequest
    reply: Reply


Endpoint = Callable[[Exchange], Awaitable[web.StreamResponse]]


def parse_json(body: bytes) -> Any:
    """The JSON value of a body, or None when it is not valid JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return None


async def abort(request: web.Request, *, reset: bool = False) -> NoReturn:
    """Cut the client's connection after flushing what was already written.

    Raising CancelledError afterwards is how aiohttp is told the client
    vanished: it ends the handler quietly instead of logging an error.
    """
    transport = request.transport
    if transport is not None:
        await _flush(transport)
        if reset:
            _linger_zero(transport)
        transport.abort()
    raise asyncio.CancelledError


async def _flush(transport: asyncio.BaseTransport, timeout: float = 1.0) -> None:
    """Wait (bounded) until the kernel has taken all the written bytes."""
    deadline = time.monotonic() + timeout
    get_size = getattr(transport, "get_write_buffer_size", lambda: 0)
    while get_size() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def _linger_zero(transport: asyncio.BaseTransport) -> None:
    """Make the coming close send RST instead of FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def send_json(
    ex: Exchange, payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """Send one JSON body, applying the reply's delivery faults."""
    body = json.dumps(payload, indent=2).encode()
    reply = ex.reply
    if reply.garbage_after is not None:
        body = body[: len(body) // 2]
    pause = reply.delay_per_chunk + (reply.stall_seconds if reply.stall_after is not None else 0.0)
    if pause:
        await asyncio.sleep(pause)
    resp = web.StreamResponse(status=status, headers={**(headers or {}), **reply.headers})
    resp.content_type = "application/json"
    resp.content_length = len(body)
    await resp.prepare(ex.request)
    if reply.drop_after is not None:
        await resp.write(body[: len(body) // 2])
        await abort(ex.request)
    await resp.write(body)
    await resp.write_eof()
    return resp


def sse_event(payload: Any) -> bytes:
    """One `data:` event with compact JSON, as OpenAI-style streams send."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def send_sse(
    ex: Exchange, events: Sequence[bytes], *, headers: Mapping[str, str] | None = None
) -> web.StreamResponse:
    """Stream encoded SSE events (chunked), applying the reply's faults."""
    reply = ex.reply
    events = list(events)
    if reply.garbage_after is not None:
        events.insert(reply.garbage_after, GARBAGE_SSE)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            **(headers or {}),
            **reply.headers,
        }
    )
    resp.enable_chunked_encoding()
    await resp.prepare(ex.request)
    drop_at = None if reply.drop_after is None else min(reply.drop_after, len(events) - 1)
    for index, event in enumerate(events):
        if index == drop_at:
            await abort(ex.request)
        await _pace(reply, index)
        await resp.write(event)
    await resp.write_eof()
    return resp


async def _pace(reply: Reply, index: int) -> None:
    """Sleep as the reply's trickle and stall settings ask before event `index`."""
    if reply.delay_per_chunk and index:
        await asyncio.sleep(reply.delay_per_chunk)
    if reply.stall_after == index:
        await asyncio.sleep(reply.stall_seconds)


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class FakeUpstream:
    """A scriptable fake HTTP upstream; subclasses add routes and wire shapes.

    Use as `with FakeX() as up: ...`, or `start()`/`stop()`, or through
    `FakeX.fixture()`.  All public methods are thread-safe.
    """

    base_path: ClassVar[str] = ""
    shutdown_timeout: ClassVar[float] = 0.2
    max_request_size: ClassVar[int] = 64 * 1024 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[tuple[str | None, Behaviour]] = deque()
        self._default: Behaviour = Reply()
        self._requests: list[RecordedRequest] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._port: int | None = None
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}  # by path: the most requests answered at once

    # -- provider hooks ----------------------------------------------------

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        """(method, path, endpoint) triples this provider serves."""
        raise NotImplementedError

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        """The provider's JSON error body for `status`."""
        raise NotImplementedError

    def response_headers(self, record: RecordedRequest) -> Mapping[str, str]:
        """Headers the provider adds to every response (e.g. a request id)."""
        return {}

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve from a background thread."""
        if self._thread is not None:
            raise RuntimeError(f"{self!r} is already started")
        sock = socket.create_server(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(sock, ready),), name=repr(self), daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=10)
        except BaseException:
            self._thread.join(timeout=10)
            self._thread = None
            raise
        return self

    def stop(self) -> None:
        """Close every connection, cancel handlers and join the thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        if thread.is_alive():
            raise RuntimeError(f"{self!r} did not stop")
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @classmethod
    def fixture(cls, *, scope: str = "function", name: str | None = None, **options: Any) -> Any:
        """A pytest fixture yielding a started `cls(**options)`.

        In a conftest or test module: `my_upstream = FakeX.fixture(api_key="k")`.
        """

        def _fixture() -> Iterator[FakeUpstream]:
            with cls(**options) as server:
                yield server

        return pytest.fixture(scope=scope, name=name)(_fixture)  # type: ignore[call-overload]

    async def _serve(self, sock: socket.socket, ready: concurrent.futures.Future[None]) -> None:
        """The background thread's main coroutine: serve until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(
            self._make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=self.shutdown_timeout
        )
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException as exc:
            sock.close()
            await runner.cleanup()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_request_size)
        for method, path, endpoint in self.endpoints():
            app.router.add_route(method, path, self._handler(endpoint))
        app.router.add_route("*", "/{tail:.*}", self._handler(self._not_found))
        app.on_response_prepare.append(self._add_default_headers)
        return app

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT`, without the API's base path."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The base URL clients are configured with, e.g. `.../v1`."""
        return self.root_url + self.base_path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(port={self._port})"

    # -- scripting ---------------------------------------------------------

    def script(self, *behaviours: Behaviour | Iterable[Behaviour], path: str | None = None) -> None:
        """Queue behaviours for the next requests, one per request, in order.

        With `path` (e.g. "/chat/completions" or "/v1/chat/completions")
        only requests to that path consume them.  Queues append; see reset().
        """
        only = None if path is None else self._full_path(path)
        with self._lock:
            self._script.extend((only, b) for b in _flatten(behaviours))

    def set_default(self, behaviour: Behaviour | None) -> None:
        """What unscripted requests get; None restores the normal reply."""
        with self._lock:
            self._default = behaviour if behaviour is not None else Reply()

    def reset(self) -> None:
        """Forget the script, the default and the recorded requests."""
        with self._lock:
            self._script.clear()
            self._default = Reply()
            self._requests.clear()

    @property
    def pending(self) -> int:
        """How many scripted behaviours are still waiting for a request."""
        with self._lock:
            return len(self._script)

    def _full_path(self, path: str) -> str:
        if self.base_path and not path.startswith(self.base_path + "/"):
            return self.base_path + path
        return path

    def _next_behaviour(self, path: str) -> Behaviour:
        with self._lock:
            for index, (only, behaviour) in enumerate(self._script):
                if only is None or only == path:
                    del self._script[index]
                    return behaviour
            return self._default

    # -- recording ---------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests for one path (base path optional)."""
        full = self._full_path(path)
        return [r for r in self.requests if r.path == full]

    @property
    def last_request(self) -> RecordedRequest:
        requests = self.requests
        if not requests:
            raise LookupError(f"{self!r} has received no request")
        return requests[-1]

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._lock:
            record = RecordedRequest(
                seq=len(self._requests),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=CIMultiDictProxy(CIMultiDict(request.headers)),
                body=body,
                json=parse_json(body),
                peer=tuple(peer[:2]) if peer else None,
                received_at=time.monotonic(),
            )
            self._requests.append(record)
        request[RECORD_KEY] = record
        return record

    # -- dispatch ----------------------------------------------------------

    def _handler(self, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap an endpoint: record, pick the behaviour, render HttpError."""

        async def handle(request: web.Request) -> web.StreamResponse:
            path = request.path  # one event loop: no lock needed
            self.in_flight[path] = now = self.in_flight.get(path, 0) + 1
            self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), now)
            try:
                record = await self._record(request)
                behaviour = self._next_behaviour(request.path)
                if not isinstance(behaviour, Reply):
                    return await self._fault(request, behaviour)
                try:
                    return await endpoint(Exchange(request, record, behaviour))
                except HttpError as err:
                    return _json_response(err.status, err.body, err.headers)
            finally:
                self.in_flight[path] -= 1

        return handle

    async def _fault(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        if isinstance(behaviour, Status):
            return self._status_response(behaviour)
        if isinstance(behaviour, Hang):
            await _sleep(behaviour.seconds)
            await abort(request)
        if isinstance(behaviour, Drop):
            await abort(request, reset=behaviour.reset)
        raise TypeError(f"unknown behaviour {behaviour!r}")

    def _status_response(self, behaviour: Status) -> web.Response:
        body = behaviour.body
        if body is None:
            body = self.error_payload(behaviour.code)
        if isinstance(body, (str, bytes)):
            headers = CIMultiDict({"Content-Type": "text/plain; charset=utf-8"})
            headers.update(behaviour.headers)
            data = body.encode() if isinstance(body, str) else body
            return web.Response(status=behaviour.code, body=data, headers=headers)
        return _json_response(behaviour.code, body, behaviour.headers)

    async def _not_found(self, ex: Exchange) -> web.StreamResponse:
        message = f"Invalid URL ({ex.request.method} {ex.request.path})"
        raise HttpError(404, self.error_payload(404, message))

    async def _add_default_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        record = request.get(RECORD_KEY)
        if record is not None:
            for name, value in self.response_headers(record).items():
                response.headers.setdefault(name, value)


async def _sleep(seconds: float | None) -> None:
    """Sleep `seconds`, or until cancelled when None."""
    if seconds is None:
        await asyncio.Event().wait()
    else:
        await asyncio.sleep(seconds)


def _json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    all_headers = CIMultiDict({"Content-Type": "application/json"})
    all_headers.update(headers or {})
    return web.Response(status=status, body=json.dumps(body, indent=2).encode(), headers=all_headers)


def _flatten(items: Iterable[Behaviour | Iterable[Behaviour]]) -> Iterator[Behaviour]:
    for item in items:
        if isinstance(item, Behaviour):
            yield item
        else:
            yield from item


def closed_port_url(path: str = "/v1") -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused.

    The port was free a moment ago and is released at once; the kernel
    hands out ephemeral ports in rotation, so it stays unused in practice.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
