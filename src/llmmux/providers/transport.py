"""How a provider's requests reach its upstream: two verbs behind one small interface.

A `Transport` sends an `UpstreamRequest` and hands back the reply whatever its status:
`send` buffers the body, `open_stream` yields it as it arrives. It reads no status as an
error and knows no provider; `HTTPProvider` (http_provider.py) does both, in one place.

`Http1Transport` is the one in production: one keep-alive pool per upstream over the
gateway's own HTTP/1.1 client (http1.py: an asyncio Protocol and httptools' parser). It
replaced aiohttp when measured on this path (bench/http_clients.py, the hot-path table in
bench/README.md): about a third less CPU per request and per stream than aiohttp.
`MockTransport` (mock_transport.py) answers from a plain function, for unit tests.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Protocol
from urllib.parse import quote, urlsplit

from ..config.model import ProviderConfig
from ..errors import UpstreamBadResponse, UpstreamConnectError, UpstreamError, UpstreamTimeout
from .http1 import Connection, Http1Pool, InvalidReply, Origin, ReplyBrokenOff

MAX_ERROR_BODY = 64 * 1024
"""The most of an error reply's body that is read: enough for any message, bounded against a hostile one."""


@dataclass(slots=True)
class UpstreamRequest:
    """One request to an upstream, with every header it carries (the provider's auth among them)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    timeout: float | None = None
    """A limit on the whole exchange; None: the transport's own limits (the provider's config)."""
    idle_timeout: float | None = None
    """Streams: no total limit, only a silence this long fails (a model download runs for hours)."""


@dataclass(slots=True)
class UpstreamResponse:
    """A whole reply. An error reply's body is cut at MAX_ERROR_BODY."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(slots=True)
class UpstreamStream:
    """A reply whose body arrives chunk by chunk, while the request is open."""

    status: int
    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]

    async def read(self, limit: int = MAX_ERROR_BODY) -> bytes:
        """Up to `limit` bytes of the body: what an error reply says."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks:
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)[:limit]


class Transport(Protocol):
    """What a provider needs of an HTTP client."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send `request` and read the whole reply, whatever its status."""
        ...

    def open_stream(self, request: UpstreamRequest) -> AbstractAsyncContextManager[UpstreamStream]:
        """Send `request` and yield the reply once its head arrives; the body streams from `chunks`."""
        ...

    async def aclose(self) -> None:
        """Release the connections."""
        ...


class Http1Transport:
    """Keep-alive connections to a provider's upstreams over the gateway's own HTTP/1.1 client (http1.py).

    `timeout` bounds a whole exchange, `read_timeout` (default: none beyond `timeout`) each
    silence of the upstream, `connect_timeout` waiting for a free connection and connecting,
    `max_connections` the connections in use at once (0: no limit). A request's own `timeout`
    replaces all but the connect limit; its `idle_timeout` leaves only silences bounded (a
    model download runs for hours). Proxies are not read from the environment.

    ```python
    transport = Http1Transport(timeout=600, connect_timeout=10, read_timeout=None, max_connections=100)
    reply = await transport.send(UpstreamRequest("POST", "http://127.0.0.1:8080/v1/chat/completions", headers, body))
    ```
    """

    def __init__(
        self, *, timeout: float, connect_timeout: float, read_timeout: float | None, max_connections: int
    ) -> None:
        self._timeout = timeout
        self._read_timeout = read_timeout if read_timeout and read_timeout < timeout else None
        self._pool = Http1Pool(max_connections, connect_timeout)
        self._targets: dict[str, tuple[Origin, str]] = {}
        # (method, URL) -> the header set last sent there, the URL's origin and the head
        # without its length: a provider hands the same read-only set on every request.
        self._heads: dict[tuple[str, str], tuple[Mapping[str, str], Origin, bytes]] = {}

    @classmethod
    def for_config(cls, config: ProviderConfig) -> Http1Transport:
        """The limits a provider's config sets (`timeout`, `connect_timeout`, `read_timeout`, `max_connections`)."""
        return cls(
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            max_connections=config.max_connections,
        )

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        conn = await self._exchange(request)
        try:
            body = await conn.read_all(None if conn.status < 300 else MAX_ERROR_BODY)
        finally:
            self._pool.finish(conn)
        return UpstreamResponse(conn.status, conn.headers, body)

    def open_stream(self, request: UpstreamRequest) -> _Http1Stream:
        return _Http1Stream(self, request)

    async def _exchange(self, request: UpstreamRequest) -> Connection:
        origin, head = self._head(request)
        deadline: float | None = None
        idle: float | None = request.idle_timeout
        if idle is None:  # a request's own timeout replaces the config's limits, as with aiohttp
            deadline = asyncio.get_running_loop().time() + (request.timeout or self._timeout)
            idle = None if request.timeout else self._read_timeout
        return await self._pool.exchange(origin, head, request.body, deadline, idle)

    def _head(self, request: UpstreamRequest) -> tuple[Origin, bytes]:
        headers, body = request.headers, request.body
        length = b"content-length: %d\r\n\r\n" % (len(body) if body else 0)
        key = (request.method, request.url)
        held = self._heads.get(key)
        if held is not None and held[0] is headers:
            return held[1], held[2] + length
        target = self._targets.get(request.url)
        if target is None:
            target = self._targets[request.url] = _target(request.url)
            if len(self._targets) > MAX_CACHED_URLS:  # URLs with ids in them: keep the cache bounded
                self._targets.clear()
        origin, start = target
        head = head_without_length(request.method, start, headers)
        if type(headers) is MappingProxyType:  # read-only: the same object means the same headers
            if len(self._heads) >= MAX_CACHED_URLS:
                self._heads.clear()
            self._heads[key] = (headers, origin, head)
        return origin, head + length

    async def aclose(self) -> None:
        self._pool.close()


MAX_CACHED_URLS = 512
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _target(url: str) -> tuple[Origin, str]:
    """A URL's origin and the start of its request head (request line and Host), parsed once per URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    # Characters a URL may not hold raw (a space in a model name) are percent-encoded, as aiohttp's
    # yarl did; what is already encoded stays as it is.
    path = quote(parts.path or "/", safe=_PATH_SAFE) + (
        f"?{quote(parts.query, safe=_QUERY_SAFE)}" if parts.query else ""
    )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    default = port == (443 if parts.scheme == "https" else 80)
    return (parts.scheme, parts.hostname, port), f"{path} HTTP/1.1\r\nhost: {host if default else f'{host}:{port}'}\r\n"


def head_without_length(method: str, start: str, headers: Mapping[str, str]) -> bytes:
    """The request line and headers, as sent, but for the content length that ends them;
    a CR or LF inside a header is refused, not sent."""
    lines = [method, " ", start]
    breaks = 2  # after the request line and the host
    for name, value in headers.items():
        if name.lower() not in _OWN_HEADERS:
            lines += (name, ": ", value, "\r\n")
            breaks += 1
    if "accept-encoding" not in headers:
        lines.append("accept-encoding: gzip, deflate\r\n")
        breaks += 1
    head = "".join(lines)
    if head.count("\n") != breaks or head.count("\r") != breaks:  # one pass each, instead of one per header
        raise ValueError("a header name or value holds a line break")
    return head.encode()


class _Http1Stream:
    """`Http1Transport.open_stream`'s context: the reply's head on entry, its connection given back on exit."""

    __slots__ = ("_conn", "_request", "_transport")

    def __init__(self, transport: Http1Transport, request: UpstreamRequest) -> None:
        self._transport = transport
        self._request = request
        self._conn: Connection | None = None

    async def __aenter__(self) -> UpstreamStream:
        self._conn = conn = await self._transport._exchange(self._request)
        return UpstreamStream(conn.status, conn.headers, _Chunks(conn))

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._conn is not None:
            self._transport._pool.finish(self._conn)
            self._conn = None


class _Chunks:
    """A connection's body as an async iterator (a class: cheaper per chunk than an async generator)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._conn.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk


def transport_error(exc: BaseException, provider: str) -> UpstreamError | None:
    """What a failure of the HTTP client or the socket is in the gateway's terms (None: not one)."""
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"{provider} did not answer in time", provider=provider)
    if isinstance(exc, ReplyBrokenOff):
        return UpstreamBadResponse(f"{provider} broke off its reply: {exc}", provider=provider)
    if isinstance(exc, InvalidReply):
        return UpstreamBadResponse(f"{provider} sent an invalid HTTP reply: {exc}", provider=provider)
    if isinstance(exc, OSError):  # refused, reset, unreachable, closed before the reply, TLS failures
        return UpstreamConnectError(f"cannot reach {provider}: {exc.strerror or exc}", provider=provider)
    return None


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait, from either form RFC 9110 allows: a number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())
