"""Every HTTP provider type, run on `MockTransport` with no server: what it sends, and how each
failure (a status, a malformed body, an error inside a success, a dead connection) becomes one
kind of the gateway's errors, for chat, streams, embeddings and model listings alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from llmmux.errors import UpstreamError
from llmmux.providers.http_provider import HTTPProvider
from llmmux.providers.mock_transport import MockReply, MockTransport
from llmmux.providers.registry import create_provider
from llmmux.providers.transport import UpstreamRequest
from llmmux.types import EmbeddingRequest
from llmmux.wire.openai import decode_chat_request

# An error body every API's reader understands: OpenAI's and Gemini's `error`, Bedrock's `message`.
ERROR = {"error": {"message": "nope", "type": "invalid_request_error", "code": 400}, "message": "nope"}
BROKEN_FRAME = b"\x00\x00\x00\x10\x00\x00\x00\x00" + b"\x00" * 8  # an event-stream prelude with a wrong checksum

# type -> (settings, chat model, the stream's first bytes when malformed, an error event mid-stream or None)
TYPES: dict[str, tuple[dict[str, Any], str, bytes, bytes | None]] = {
    "openai": ({"api_key": "sk-test"}, "gpt-4o", b"data: {not json\n\n", b'data: {"error": {"message": "boom"}}\n\n'),
    "groq": ({"api_key": "gsk-test"}, "llama-3.3-70b", b"data: {not json\n\n", None),
    "openrouter": ({"api_key": "sk-or-test"}, "openai/gpt-4o", b"data: {not json\n\n", None),
    "azure": (
        {"api_key": "az-test", "base_url": "https://r.openai.azure.com"},
        "gpt-4o",
        b"data: {not json\n\n",
        None,
    ),
    "anthropic": (
        {"api_key": "sk-ant-test"},
        "claude-sonnet-4-5",
        b"event: message_start\ndata: {not json\n\n",
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}\n\n',
    ),
    "gemini": (
        {"api_key": "g-test"},
        "gemini-2.5-flash",
        b"data: {not json\n\n",
        b'data: {"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}\n\n',
    ),
    "bedrock": ({"api_key": "br-test", "region": "us-east-1"}, "amazon.nova-lite-v1:0", BROKEN_FRAME, None),
    "ollama": ({}, "llama3.2", b"{not json\n", b'{"error": "model runner crashed"}\n'),
}
LISTS_MODELS = [t for t in TYPES if t != "azure"]  # Azure lists its configured deployments, no call
EMBEDS = {"openai": "text-embedding-3-small", "gemini": "gemini-embedding-001", "ollama": "nomic-embed-text"}


def provider_for(kind: str, answer: Callable[[UpstreamRequest], MockReply]) -> tuple[HTTPProvider, MockTransport]:
    transport = MockTransport(answer)
    provider = create_provider(kind, name=kind, transport=transport, **TYPES[kind][0])
    assert isinstance(provider, HTTPProvider)
    return provider, transport


def chat_request(kind: str, *, stream: bool = False) -> Any:
    return decode_chat_request(
        {"model": TYPES[kind][1], "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    )


async def failure(call: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        await call
    return caught.value


async def first_chunk(provider: HTTPProvider, kind: str) -> Any:
    chunks = provider.stream(chat_request(kind, stream=True), TYPES[kind][1])
    assert isinstance(chunks, AsyncIterator)
    try:
        return await anext(chunks)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


STATUSES = [
    (400, "client_error", False),
    (401, "client_error", False),
    (404, "client_error", False),
    (408, "timeout", True),
    (429, "rate_limited", True),
    (500, "server_error", True),
    (503, "server_error", True),
]


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize(("code", "error_kind", "retryable"), STATUSES)
async def test_a_chat_status_becomes_its_error_kind(kind: str, code: int, error_kind: str, retryable: bool) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply.json(ERROR, status=code, headers={"Retry-After": "7"}))
    error = await failure(provider.complete(chat_request(kind), TYPES[kind][1]))
    assert (error.kind, error.retryable, error.upstream_status, error.provider) == (error_kind, retryable, code, kind)
    assert error.retry_after == 7.0 and "nope" in error.message


@pytest.mark.parametrize("kind", TYPES)
async def test_a_stream_status_is_raised_before_the_first_chunk(kind: str) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply.json(ERROR, status=429))
    error = await failure(first_chunk(provider, kind))
    assert (error.kind, error.upstream_status) == ("rate_limited", 429)


@pytest.mark.parametrize("kind", TYPES)
async def test_a_malformed_body_is_a_bad_response(kind: str) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply(200, b"{not json"))
    error = await failure(provider.complete(chat_request(kind), TYPES[kind][1]))
    assert (error.kind, error.retryable) == ("bad_response", True)
    assert error.message.startswith(f"{kind}: ")


@pytest.mark.parametrize("kind", TYPES)
async def test_a_malformed_stream_is_a_bad_response(kind: str) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply(200, chunks=[TYPES[kind][2]]))
    error = await failure(first_chunk(provider, kind))
    assert (error.kind, error.retryable) == ("bad_response", True)


@pytest.mark.parametrize("kind", [k for k, row in TYPES.items() if row[3] is not None])
async def test_an_error_event_in_a_stream_is_the_upstream_failing(kind: str) -> None:
    event = TYPES[kind][3]
    assert event is not None
    provider, _ = provider_for(kind, lambda _: MockReply(200, chunks=[event]))
    error = await failure(first_chunk(provider, kind))
    assert (error.kind, error.retryable) == ("server_error", True)
    assert error.message.startswith(kind)


@pytest.mark.parametrize("kind", LISTS_MODELS)
async def test_a_401_on_the_model_listing_is_an_auth_error_not_a_retry(kind: str) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply.json(ERROR, status=401))
    error = await failure(provider.list_models())
    assert (error.kind, error.retryable, error.upstream_status, error.status) == ("client_error", False, 401, 401)
    assert error.type == "authentication_error"


@pytest.mark.parametrize("kind", LISTS_MODELS)
async def test_a_malformed_model_listing_is_a_bad_response(kind: str) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply(200, b"[1, 2"))
    error = await failure(provider.list_models())
    assert error.kind == "bad_response"


@pytest.mark.parametrize("kind", EMBEDS)
@pytest.mark.parametrize(("code", "error_kind"), [(429, "rate_limited"), (401, "client_error"), (200, "bad_response")])
async def test_embedding_failures_are_translated_the_same_way(kind: str, code: int, error_kind: str) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply(code, b"{not json" if code == 200 else b'{"error": "x"}'))
    error = await failure(provider.embed(EmbeddingRequest(model=EMBEDS[kind], inputs=["a"]), EMBEDS[kind]))
    assert error.kind == error_kind


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize(
    ("raised", "error_kind"), [(ConnectionRefusedError("refused"), "connect_error"), (TimeoutError(), "timeout")]
)
async def test_a_failed_connection_is_reported_like_a_real_one(kind: str, raised: Exception, error_kind: str) -> None:
    def refuse(_: UpstreamRequest) -> MockReply:
        raise raised

    provider, _ = provider_for(kind, refuse)
    assert (await failure(provider.complete(chat_request(kind), TYPES[kind][1]))).kind == error_kind
    assert (await failure(first_chunk(provider, kind))).kind == error_kind


@pytest.mark.parametrize(
    ("kind", "header", "value"),
    [
        ("openai", "authorization", "Bearer sk-test"),
        ("openrouter", "authorization", "Bearer sk-or-test"),
        ("azure", "api-key", "az-test"),
        ("anthropic", "x-api-key", "sk-ant-test"),
        ("gemini", "x-goog-api-key", "g-test"),
        ("bedrock", "authorization", "Bearer br-test"),
    ],
)
async def test_the_handler_sees_every_header_sent(kind: str, header: str, value: str) -> None:
    provider, transport = provider_for(kind, lambda _: MockReply.json(ERROR, status=500))
    await failure(provider.complete(chat_request(kind), TYPES[kind][1]))
    [sent] = transport.requests
    assert sent.method == "POST" and sent.headers[header] == value
    assert sent.headers["content-type"] == "application/json" and sent.body is not None


async def test_a_success_decodes_and_an_async_handler_may_stream_in_chunks() -> None:
    completion = {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "message": {"content": "hi"}}]}
    event = {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "hi"}}]}

    async def chunks() -> AsyncIterator[bytes]:
        yield b"data: " + msgspec.json.encode(event)
        await asyncio.sleep(0)
        yield b"\n\ndata: [DONE]\n\n"

    async def answer(request: UpstreamRequest) -> MockReply:
        assert request.body is not None
        streaming = msgspec.json.decode(request.body).get("stream")
        return MockReply(200, chunks=chunks()) if streaming else MockReply.json(completion)

    provider, transport = provider_for("openai", answer)
    reply = await provider.complete(chat_request("openai"), "gpt-4o")
    assert reply.choices[0].message.content == "hi"
    streamed = [c async for c in provider.stream(chat_request("openai", stream=True), "gpt-4o")]
    assert [c.choices[0].delta.content for c in streamed] == ["hi"]
    assert [r.url for r in transport.requests] == ["https://api.openai.com/v1/chat/completions"] * 2
    await provider.aclose()
    assert transport.closed


async def test_a_probe_reports_the_status_instead_of_raising() -> None:
    provider, transport = provider_for("anthropic", lambda _: MockReply.json(ERROR, status=401))
    result = await provider.health(timeout=1.0)
    assert (result.ok, result.status, result.url) == (False, 401, "https://api.anthropic.com/v1/models")
    assert transport.requests[0].timeout == 1.0 and "content-type" not in transport.requests[0].headers


def test_a_provider_without_http_takes_no_transport(tmp_path: Any) -> None:
    with pytest.raises(TypeError, match="takes no transport"):
        create_provider("llama_cpp", transport=MockTransport(lambda _: MockReply()), models=[])


def test_a_provider_hands_the_transport_one_read_only_header_set_per_kind_of_request() -> None:
    """The same read-only set each time: the transport keeps the head it built for it (Http1Transport._head)."""
    provider, _ = provider_for("openai", lambda request: MockReply(200, b"{}"))
    first, again = provider.request("POST", "http://x/v1", b"{}"), provider.request("POST", "http://x/v1", b"[]")
    assert first.headers is again.headers and first.headers["authorization"] == "Bearer sk-test"
    with pytest.raises(TypeError):
        first.headers["authorization"] = "Bearer other"  # type: ignore[index]
    extra = provider.request("POST", "http://x/v1", b"{}", {"X-Trace": "1"})  # a request's own headers: a new set
    assert extra.headers is not first.headers and extra.headers["x-trace"] == "1"
