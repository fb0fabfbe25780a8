"""One pooled keep-alive HTTP client per upstream, and the one place transport errors become ours.

aiohttp won the measurement on this path (see bench/stack/RESULTS.md): it keeps connections
alive, streams bodies without buffering and costs a fraction of httpx per request.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol

import aiohttp

from ..errors import (
    UpstreamBadResponse,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
    classify_status,
)

MAX_ERROR_BODY = 64 * 1024
READ_SIZE = 64 * 1024


class Classifier(Protocol):
    """`classify_status`, or a wire format's refinement of it."""

    def __call__(
        self, status: int, message: str, *, provider: str, retry_after: float | None, body: bytes | None
    ) -> UpstreamError: ...


@contextlib.contextmanager
def map_transport_errors(provider: str) -> Iterator[None]:
    """Translate aiohttp and socket failures into the gateway's error tree."""
    try:
        yield
    except UpstreamError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise UpstreamTimeout(f"{provider} did not answer in time", provider=provider) from exc
    except aiohttp.ClientPayloadError as exc:
        raise UpstreamBadResponse(f"{provider} broke off its reply: {exc}", provider=provider) from exc
    except aiohttp.ClientResponseError as exc:
        raise UpstreamBadResponse(f"{provider} sent an invalid HTTP reply: {exc.message}", provider=provider) from exc
    except (aiohttp.ClientConnectionError, ConnectionError, OSError) as exc:
        raise UpstreamConnectError(f"cannot reach {provider}: {_reason(exc)}", provider=provider) from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or str(exc.os_error)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return str(exc) or type(exc).__name__


class Transport:
    """A keep-alive connection pool to one upstream, created lazily inside the running loop."""

    def __init__(
        self,
        provider: str,
        *,
        headers: dict[str, str],
        timeout: float,
        connect_timeout: float,
        read_timeout: float | None,
        max_connections: int,
        error_message: Callable[[bytes], str],
        classify: Classifier = classify_status,
    ) -> None:
        self.provider = provider
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=connect_timeout, sock_read=read_timeout or timeout)
        self._max_connections = max_connections
        self._error_message = error_message
        # A wire format may refine the status table from the body (e.g. context-length errors).
        self._classify = classify
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=30, ttl_dns_cache=300, enable_cleanup_closed=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=self._timeout,
                skip_auto_headers=("User-Agent",),
                auto_decompress=True,
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
        """POST JSON and return the whole body of a 2xx reply; anything else raises."""
        with map_transport_errors(self.provider):
            async with self._client().post(url, data=body, headers=_json_headers(headers)) as response:
                if response.status >= 300:
                    raise await self._error(response)
                return await response.read()

    @contextlib.asynccontextmanager
    async def stream(
        self, url: str, body: bytes, headers: dict[str, str] | None = None, *, idle_timeout: float | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST JSON and yield the reply's body as it arrives; errors are raised before the first byte.

        With `idle_timeout` no total limit applies: the reply may take as long as it keeps
        sending (a model download), and only a silence longer than `idle_timeout` fails it.
        """
        options: dict[str, Any] = {}
        if idle_timeout is not None:
            connect = self._timeout.connect
            options["timeout"] = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=idle_timeout)
        with map_transport_errors(self.provider):
            async with self._client().post(url, data=body, headers=_json_headers(headers), **options) as response:
                if response.status >= 300:
                    raise await self._error(response)
                yield self._chunks(response)

    async def _chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        with map_transport_errors(self.provider):
            async for chunk in response.content.iter_any():
                yield chunk

    async def get(self, url: str, *, timeout: float | None = None) -> tuple[int, bytes]:
        with map_transport_errors(self.provider):
            async with self._client().get(url, **self._timeout_options(timeout)) as response:
                return response.status, await response.read()

    async def request(
        self, method: str, url: str, body: bytes | None = None, timeout: float | None = None
    ) -> tuple[int, bytes]:
        with map_transport_errors(self.provider):
            options = {"data": body, "headers": _JSON, **self._timeout_options(timeout)}
            async with self._client().request(method, url, **options) as response:
                return response.status, await response.read()

    @staticmethod
    def _timeout_options(timeout: float | None) -> dict[str, Any]:
        # aiohttp reads an explicit `timeout=None` as "no limit at all", so the session's
        # limits apply only when the keyword is left out.
        return {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}

    async def _error(self, response: aiohttp.ClientResponse) -> UpstreamError:
        body = await response.content.read(MAX_ERROR_BODY)
        message = f"{self.provider} returned {response.status}: {self._error_message(body)}"
        return self._classify(
            response.status,
            message,
            provider=self.provider,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            body=body,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, method: str, url: str, *, headers: dict[str, str], body: bytes | None = None, timeout: float | None = None
    ) -> tuple[int, bytes]:
        """Any request with headers of its own (a signed one); status and body come back whatever the status."""
        # aiohttp reads an explicit `timeout=None` as "no limit"; the session's limits apply when it is left out.
        limit = aiohttp.ClientTimeout(total=timeout) if timeout else self._timeout
        with map_transport_errors(self.provider):
            async with self._client().request(method, url, data=body, headers=headers, timeout=limit) as response:
                return response.status, await response.read()


_JSON = {"content-type": "application/json"}


def _json_headers(extra: dict[str, str] | None) -> dict[str, str]:
    return {**_JSON, **extra} if extra else _JSON


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


def kwargs_for(config: Any) -> dict[str, Any]:
    """Transport settings from a provider's config."""
    return {
        "timeout": config.timeout,
        "connect_timeout": config.connect_timeout,
        "read_timeout": config.read_timeout,
        "max_connections": config.max_connections,
    }
