"""The OpenAI-compatible surface: /v1/chat/completions and /v1/models."""

from __future__ import annotations

import time

import msgspec

from ..errors import AllAttemptsFailed, ContextLengthExceeded, LLMMuxError, ModelNotFound, UpstreamClientError
from ..events import ClientApi
from ..router import Router
from ..routing import ChatStream, Completion
from ..types import ChatChunk
from ..wire import openai as wire
from ..wire.sse import DONE, frame
from . import access
from .amplification import check_choices
from .http import JSON_HEADERS, SSE_HEADERS, Request, Send, header_list, send_bytes
from .streaming import routing_headers, send_answer, send_stream


async def chat_completions(router: Router, request: Request, send: Send) -> None:
    chat = wire.decode_chat_request(await request.json())
    check_choices(chat.n, 1, router.config.server)
    capability = request.header(b"x-llmmux-capability")
    if capability and chat.capability is None:
        chat.capability = capability.decode("latin-1").strip()
    context = request.context(ClientApi.OPENAI)
    if not chat.stream:
        await send_answer(router, chat, context, request, send, _encode_answer)
        return
    stream = await router.open_stream(chat, context=context)
    await _send_stream(stream, chat.include_usage, request, send)


def _encode_answer(done: Completion) -> bytes:
    return wire.encode_chat_response(done.response, done.public)


async def _send_stream(stream: ChatStream, include_usage: bool, request: Request, send: Send) -> None:
    public = stream.public

    def encode(chunk: ChatChunk) -> bytes:
        if chunk.usage is not None and not chunk.choices and not include_usage:
            return b""  # llmmux asked for usage for its own accounting
        return frame(wire.encode_chunk(chunk, public))

    await send_stream(
        stream,
        request,
        send,
        SSE_HEADERS,
        encode=encode,
        finish=lambda: DONE,
        fail=lambda exc: frame(wire.encode_error(exc)),
    )


async def embeddings(router: Router, request: Request, send: Send) -> None:
    embed = wire.decode_embedding_request(await request.json())
    done = await router.embed(embed, context=request.context(ClientApi.OPENAI))
    body = wire.encode_embedding_response(done.response, done.public, embed.encoding_format)
    await send_bytes(send, 200, body, header_list(JSON_HEADERS, routing_headers(done, request.request_id)))


async def list_models(router: Router, request: Request, send: Send) -> None:
    created = int(time.time())
    data = [_model_entry(router, name, created) for name in access.visible_names(router, request)]
    body = msgspec.json.encode({"object": "list", "data": data})
    await send_bytes(send, 200, body, JSON_HEADERS)


async def retrieve_model(router: Router, request: Request, send: Send) -> None:
    name = request.path.removeprefix("/v1/models/")
    if name not in router.table.routes():
        suggestions = router.table.suggest(name) if access.restriction(request) is None else []
        raise ModelNotFound(name, suggestions)
    access.visible_route(router, request, name)  # a model the key may not use is a 404 too
    body = msgspec.json.encode(_model_entry(router, name, int(time.time())))
    await send_bytes(send, 200, body, JSON_HEADERS)


def _model_entry(router: Router, name: str, created: int) -> dict[str, object]:
    route = router.table.routes()[name]
    return {"id": name, "object": "model", "created": created, "owned_by": route.candidates[0].provider.name}


def render_error(error: LLMMuxError) -> tuple[int, bytes]:
    """OpenAI's error shape; an upstream's own OpenAI-shaped 4xx body passes through untouched,
    except a context-length refusal, always written with OpenAI's `code: context_length_exceeded`
    (llama-server's own body says `type: exceed_context_size_error`)."""
    passes = not isinstance(error, ContextLengthExceeded)
    if passes and isinstance(error, UpstreamClientError) and error.body and _is_openai_error(error.body):
        return error.status, error.body
    if isinstance(error, AllAttemptsFailed):
        body = {
            "error": {
                "message": error.message,
                "type": error.type,
                "param": None,
                "code": error.code,
                "attempts": [a.describe() for a in error.attempts],
            }
        }
        return error.status, msgspec.json.encode(body)
    return error.status, wire.encode_error(error)


def _is_openai_error(body: bytes) -> bool:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return False
    # OpenAI's error object always has `type` (possibly null); Google's, AWS's and OpenRouter's
    # `{"error": {...}}` bodies do not, and Anthropic's envelope has a top-level "type": "error":
    # those are re-rendered in OpenAI's shape (with their code) instead.
    error = decoded.get("error") if isinstance(decoded, dict) else None
    return (
        isinstance(error, dict)
        and isinstance(error.get("message"), str)
        and "type" in error
        and decoded.get("type") != "error"
    )
