"""How a provider's requests reach its upstream: two verbs behind one small interface.

A `Transport` sends an `UpstreamRequest` and hands back the reply whatever its status:
`send` buffers the body, `open_stream` yields it as it arrives. It reads no status as an
error and knows no provider; `HTTPProvider` (http_provider.py) does both, in one place.

`AiohttpTransport` is the one in production: one pooled keep-alive client per upstream.
aiohttp won the measurement on this path (see bench/stack/RESULTS.md): it keeps connections
alive, streams bodies without buffering and costs a fraction of httpx per request.
`MockTransport` (mock_transport.py) answers from a plain function, for unit tests.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import aiohttp

from ..config.model import ProviderConfig
from ..errors import UpstreamBadResponse, UpstreamConnectError, UpstreamError, UpstreamTimeout

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


class AiohttpTransport:
    """A keep-alive connection pool to one upstream, created lazily inside the running loop."""

    def __init__(
        self, *, timeout: float, connect_timeout: float, read_timeout: float | None, max_connections: int
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout, sock_read=read_timeout or timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def for_config(cls, config: ProviderConfig) -> AiohttpTransport:
        """The limits a provider's config sets (`timeout`, `connect_timeout`, `read_timeout`, `max_connections`)."""
        return cls(
            timeout=config.timeout,
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            max_connections=config.max_connections,
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=30, ttl_dns_cache=300, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        return self._session

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        async with self._client().request(
            request.method, request.url, data=request.body, headers=request.headers, **self._limits(request)
        ) as response:
            status = response.status
            body = await response.read() if status < 300 else await response.content.read(MAX_ERROR_BODY)
            return UpstreamResponse(status, response.headers, body)

    def open_stream(self, request: UpstreamRequest) -> _OpenedStream:
        return _OpenedStream(
            self._client().request(
                request.method, request.url, data=request.body, headers=request.headers, **self._limits(request)
            )
        )

    def _limits(self, request: UpstreamRequest) -> dict[str, Any]:
        # aiohttp reads an explicit `timeout=None` as "no limit at all", so the session's
        # limits apply only when the keyword is left out.
        if request.idle_timeout is not None:
            return {"timeout": aiohttp.ClientTimeout(connect=self._timeout.connect, sock_read=request.idle_timeout)}
        if request.timeout:
            return {"timeout": aiohttp.ClientTimeout(total=request.timeout)}
        return {}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _OpenedStream:
    """aiohttp's request context as an `UpstreamStream` (a class: one is entered per streamed request)."""

    __slots__ = ("_request",)

    def __init__(self, request: Any) -> None:
        self._request = request

    async def __aenter__(self) -> UpstreamStream:
        response: aiohttp.ClientResponse = await self._request.__aenter__()
        return UpstreamStream(response.status, response.headers, response.content.iter_any())

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self._request.__aexit__(kind, exc, traceback)


def transport_error(exc: BaseException, provider: str) -> UpstreamError | None:
    """What a failure of the HTTP client or the socket is in the gateway's terms (None: not one)."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"{provider} did not answer in time", provider=provider)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamBadResponse(f"{provider} broke off its reply: {exc}", provider=provider)
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamBadResponse(f"{provider} sent an invalid HTTP reply: {exc.message}", provider=provider)
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError | OSError):
        return UpstreamConnectError(f"cannot reach {provider}: {_reason(exc)}", provider=provider)
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


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
