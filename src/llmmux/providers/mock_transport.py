"""A transport that answers from a function: any HTTP provider, run with no server.

Modeled on `httpx.MockTransport`. The handler gets each `UpstreamRequest` (method, URL,
every header, body) and returns a `MockReply`; it may be async, may stream its body in
chunks, and may raise (ConnectionRefusedError, TimeoutError) to stand for a failed
connection, which the provider reports as it reports a real one.

```python
def handler(request: UpstreamRequest) -> MockReply:
    assert request.headers["authorization"] == "Bearer sk-test"
    return MockReply.json({"error": {"message": "bad key"}}, status=401)

provider = create_provider("openai", api_key="sk-test", transport=MockTransport(handler))
await provider.list_models()  # raises UpstreamClientError: openai /models returned 401: bad key
```
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .transport import UpstreamRequest, UpstreamResponse, UpstreamStream

__all__ = ["Handler", "MockReply", "MockTransport"]


@dataclass(slots=True)
class MockReply:
    """What a handler answers: a status, headers and a body, whole or in `chunks`."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | AsyncIterable[bytes] | None = None
    """A body sent piece by piece (an SSE or NDJSON stream); `body` is then unused."""

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> MockReply:
        return cls(status, msgspec.json.encode(data), {"content-type": "application/json", **(headers or {})})

    async def _body_chunks(self) -> AsyncGenerator[bytes, None]:
        if self.chunks is None:
            if self.body:
                yield self.body
        elif isinstance(self.chunks, AsyncIterable):
            async for chunk in self.chunks:
                yield chunk
        else:
            for chunk in self.chunks:
                yield chunk


Handler = Callable[[UpstreamRequest], MockReply | Awaitable[MockReply]]


class MockTransport:
    """Answers every request with `handler(request)`; keeps the requests it saw in `requests`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []
        self.closed = False

    async def _answer(self, request: UpstreamRequest) -> MockReply:
        self.requests.append(request)
        reply = self.handler(request)
        return await reply if inspect.isawaitable(reply) else reply

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        reply = await self._answer(request)
        body = b"".join([chunk async for chunk in reply._body_chunks()])
        return UpstreamResponse(reply.status, _lower(reply.headers), body)

    @contextlib.asynccontextmanager
    async def open_stream(self, request: UpstreamRequest) -> AsyncIterator[UpstreamStream]:
        reply = await self._answer(request)
        chunks = reply._body_chunks()
        try:
            yield UpstreamStream(reply.status, _lower(reply.headers), chunks)
        finally:
            await chunks.aclose()

    async def aclose(self) -> None:
        self.closed = True


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    # Header names are case-insensitive; readers look them up in lower case.
    return {name.lower(): value for name, value in headers.items()}
