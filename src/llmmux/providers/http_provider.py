"""The base of every provider that calls its upstream over HTTP, and the one place where what
goes wrong there becomes the gateway's error tree.

A subclass builds bodies and decodes replies with its wire module; `HTTPProvider` sends them
through its `Transport` and translates, here and nowhere else:

* a status of 300 or more, on every call (chat, streams, embeddings, model listings, model
  management), through the API's `ErrorFormat`: its reader of error bodies and its
  refinement of `classify_status` (so a 401 on `/models` is an auth error, not a retry);
* a reply its wire module calls a `MalformedReply` (UpstreamBadResponse, retried elsewhere)
  or an `ErrorReply`, a failure inside a success, classified as its status would be;
* a failure of the HTTP client or the socket (`transport.transport_error`).

The transport is injectable: `MockTransport(handler)` runs any of these providers in a unit
test without a server (see mock_transport.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar, overload

from ..config.model import ProviderConfig
from ..errors import UpstreamBadResponse, UpstreamError, classify_status
from ..types import ChatChunk
from ..wire import ErrorReply, MalformedReply
from ..wire.openai import error_message
from ..wire.sse import EventReader, SSEParser, read_batch
from .base import Provider, ProviderType
from .transport import (
    Http1Transport,
    Transport,
    UpstreamRequest,
    UpstreamResponse,
    parse_retry_after,
    transport_error,
)

T = TypeVar("T")
JSON_TYPE = "application/json"


class SSECall(NamedTuple):
    """One SSE stream's request, what reads its events, and what its missing end is called."""

    url: str
    body: bytes
    headers: Mapping[str, str] | None
    reader: EventReader
    ending: str  # "without [DONE]": the error's words when the upstream closes before the last event


class Classifier(Protocol):
    """`classify_status`, or an API's refinement of it."""

    def __call__(
        self, status: int, message: str, *, provider: str, retry_after: float | None, body: bytes | None
    ) -> UpstreamError: ...


@dataclass(frozen=True, slots=True)
class ErrorFormat:
    """How one API writes its errors: the human message in an error body, and how its bodies
    refine the status table (a context-length 400 is `ContextLengthExceeded`)."""

    message: Callable[[bytes], str]
    classify: Classifier = classify_status


class HTTPProvider(Provider):
    """A provider whose upstream answers over HTTP; subclasses say where, in which format."""

    errors: ClassVar[ErrorFormat] = ErrorFormat(error_message)

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind)
        self.transport: Transport = transport if transport is not None else Http1Transport.for_config(config)
        self._translating = _Translating(self)
        self._header_sets: tuple[Mapping[str, str], Mapping[str, str]] | None = None

    def session_headers(self) -> dict[str, str]:
        """Headers on every request to this upstream, its credentials among them: the row's and the config's."""
        return {**self.kind.headers, **self.config.headers}

    # -- sending --

    def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
        idle_timeout: float | None = None,
    ) -> UpstreamRequest:
        """A request with the session's headers, a JSON content type when it has a body, and `headers` on top."""
        sent = self._session_headers(body is not None)
        if headers:
            # Names are case-insensitive: lower-cased, a request's header replaces the session's.
            sent = {**sent, **{name.lower(): value for name, value in headers.items()}}
        return UpstreamRequest(method, url, sent, body, timeout, idle_timeout)

    def _session_headers(self, with_body: bool) -> Mapping[str, str]:
        if self._header_sets is None:  # built on first use: a subclass's headers may read its own settings
            plain = {name.lower(): value for name, value in self.session_headers().items()}
            # Read-only: the transport keeps the head it wrote for a header set it is handed
            # again (`Http1Transport._head`), which only a set that cannot change allows.
            self._header_sets = (MappingProxyType(plain), MappingProxyType({**plain, "content-type": JSON_TYPE}))
        return self._header_sets[with_body]

    @overload
    async def call(
        self,
        method: str,
        url: str,
        body: bytes | None = ...,
        *,
        decode: Callable[[bytes], T],
        headers: Mapping[str, str] | None = ...,
        timeout: float | None = ...,
        what: str = ...,
    ) -> T: ...

    @overload
    async def call(
        self,
        method: str,
        url: str,
        body: bytes | None = ...,
        *,
        decode: None = ...,
        headers: Mapping[str, str] | None = ...,
        timeout: float | None = ...,
        what: str = ...,
    ) -> bytes: ...

    async def call(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        *,
        decode: Callable[[bytes], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        what: str = "",
    ) -> Any:
        """Send one request and return its body (decoded with `decode`); any failure raises an UpstreamError.

        `what` names the call in an error's message (`/models`) where the chat call is not meant.
        """
        with self._translating:
            response = await self.transport.send(self.request(method, url, body, headers, timeout=timeout))
            if response.status >= 300:
                raise self.status_error(response.status, response.headers, response.body, what)
            return response.body if decode is None else decode(response.body)

    async def exchange(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send `request` and return the reply whatever its status (a probe, or a caller that reads statuses itself)."""
        with self._translating:
            return await self.transport.send(request)

    @contextlib.asynccontextmanager
    async def open_stream(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        *,
        idle_timeout: float | None = None,
        what: str = "",
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST `body` and yield the reply's chunks as they arrive; a failed status raises before any.

        The `async with` block runs inside the translation too: a MalformedReply or ErrorReply
        that decoding a chunk raises there reaches the caller as the gateway's error.
        """
        with self._translating:
            request = self.request("POST", url, body, headers, idle_timeout=idle_timeout)
            async with self.transport.open_stream(request) as response:
                if response.status >= 300:
                    raise self.status_error(response.status, response.headers, await response.read(), what)
                yield response.chunks

    async def event_batches(self, call: Callable[[], SSECall]) -> AsyncIterator[list[ChatChunk]]:
        """An SSE stream's chunks, one list per upstream read (`Provider.stream_batches`).

        `call` runs at the first `__anext__`, so a request that cannot be encoded fails
        there, as every stream's errors do."""
        url, body, headers, reader, ending = call()
        parser = SSEParser()
        async with self.open_stream(url, body, headers) as received:
            async for data in received:
                batch, error = read_batch(parser, reader, data)
                if batch:
                    yield batch
                if error is not None:
                    raise error
                if reader.finished:
                    return
        raise UpstreamBadResponse(f"{self.name} ended the stream {ending}", provider=self.name)

    # -- translating --

    def status_error(self, status: int, headers: Mapping[str, str], body: bytes, what: str = "") -> UpstreamError:
        """The error an upstream's status and body stand for, classified by this API's rules."""
        where = f"{self.name} {what}" if what else self.name
        return self.errors.classify(
            status,
            f"{where} returned {status}: {self.errors.message(body)}",
            provider=self.name,
            retry_after=parse_retry_after(headers.get("retry-after")),
            body=body,
        )

    def reply_error(self, exc: BaseException) -> UpstreamError | None:
        """The gateway's error for a broken reply or a failed exchange; None for anything else."""
        if isinstance(exc, MalformedReply):
            return UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name)
        if isinstance(exc, ErrorReply):
            message = f"{self.name} {exc}"
            return self.errors.classify(exc.status, message, provider=self.name, retry_after=None, body=exc.body)
        return transport_error(exc, self.name)

    # -- what every HTTP provider shares --

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        response = await self.exchange(self.request("GET", url, timeout=timeout))
        return response.status, response.body

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Translating:
    """`with provider._translating:` turns what goes wrong inside into the gateway's errors.

    A class, not a generator-based context manager: it is entered on every request.
    """

    __slots__ = ("_provider",)

    def __init__(self, provider: HTTPProvider) -> None:
        self._provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None or isinstance(exc, UpstreamError):
            return
        error = self._provider.reply_error(exc)
        if error is not None:
            raise error from None
