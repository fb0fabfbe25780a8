"""The Anthropic Messages surface: /v1/messages and /v1/messages/count_tokens.

Claude Code or the `anthropic` SDK pointed at llmmux can run on any backend: a local Ollama
model, an OpenAI-format server, Gemini, or Anthropic itself (passed through untouched).
"""

from __future__ import annotations

import msgspec

from ..events import ClientApi
from ..router import Router
from ..routing import ChatStream
from ..types import ChatRequest
from ..wire import anthropic as wire
from . import access
from .http import JSON_HEADERS, SSE_HEADERS, Request, Send, send_bytes
from .streaming import send_answer, send_stream

CHARS_PER_TOKEN = 4
"""count_tokens estimates locally (no tokenizer download): about four characters a token."""

render_error = wire.render_error


async def messages(router: Router, request: Request, send: Send) -> None:
    chat = wire.decode_chat_request(await request.json())
    context = request.context(ClientApi.ANTHROPIC)
    if not chat.stream:
        await send_answer(
            router, chat, context, request, send, lambda done: wire.encode_chat_response(done.response, done.public)
        )
        return
    stream = await router.open_stream(chat, context=context)
    await _send_events(stream, request, send)


async def _send_events(stream: ChatStream, request: Request, send: Send) -> None:
    encoder = wire.StreamEncoder(stream.public)
    await send_stream(
        stream, request, send, SSE_HEADERS, encode=encoder.encode, finish=encoder.finish, fail=encoder.error
    )


async def count_tokens(router: Router, request: Request, send: Send) -> None:
    chat = wire.decode_chat_request({"max_tokens": 1, **_body(await request.json())})
    route = access.resolve(router, request, chat.model)  # an unknown model is a 404 here as on /v1/messages
    key = access.restriction(request)
    if key is not None and not access.usable(router, request, route):
        raise key.refusal(chat.model)  # a 403, as /v1/messages would answer
    await send_bytes(send, 200, msgspec.json.encode({"input_tokens": estimate_input_tokens(chat)}), JSON_HEADERS)


def _body(body: object) -> dict[str, object]:
    return body if isinstance(body, dict) else {}


def estimate_input_tokens(chat: ChatRequest) -> int:
    characters = sum(len(m.text()) for m in chat.messages)
    characters += sum(
        len(t.name) + len(t.description or "") + len(msgspec.json.encode(t.parameters or {})) for t in chat.tools or ()
    )
    return max(1, -(-characters // CHARS_PER_TOKEN))
