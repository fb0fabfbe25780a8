"""Anthropic `Message` responses <-> canonical `ChatResponse`, both directions."""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from ...types import ChatResponse, Choice, Message, ToolCall
from .. import MalformedReply
from ..openai import rename_model
from .common import WIRE, WireUsage, encode, finish_reason, stop_reason, usage_in, usage_out


class WireBlock(msgspec.Struct):
    """A content block of a response or of `content_block_start`; only what llmmux reads."""

    type: str
    text: str | None = None
    thinking: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class _Message(msgspec.Struct):
    type: str = "message"
    id: str = ""
    model: str = ""
    content: list[WireBlock] = []
    stop_reason: str | None = None
    usage: WireUsage | None = None
    error: Any = None


_decoder = msgspec.json.Decoder(_Message)


def decode_chat_response(data: bytes, *, created: int | None = None) -> ChatResponse:
    """An upstream's `Message` body as a canonical response (`created` defaults to now)."""
    try:
        wire = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not an Anthropic message: {exc}") from None
    if wire.type != "message":
        raise MalformedReply(f"expected a message, got type {wire.type!r}")
    return ChatResponse(
        id=wire.id,
        model=wire.model,
        created=int(time.time()) if created is None else created,
        choices=[Choice(message=message_in(wire.content), finish_reason=finish_reason(wire.stop_reason))],
        usage=usage_in(wire.usage),
        raw=data,
        raw_wire=WIRE,
    )


def message_in(blocks: list[WireBlock]) -> Message:
    """Text blocks joined into the content, tool_use blocks as tool calls, thinking as reasoning."""
    texts = [b.text for b in blocks if b.type == "text" and b.text is not None]
    thinking = [b.thinking for b in blocks if b.type == "thinking" and b.thinking]
    calls = [
        ToolCall(id=b.id or "", name=b.name or "", arguments=encode(b.input or {}).decode())
        for b in blocks
        if b.type == "tool_use"
    ]
    return Message(
        role="assistant",
        content="".join(texts) if texts else None,
        tool_calls=calls or None,
        reasoning="".join(thinking) or None,
    )


def encode_chat_response(response: ChatResponse, public_model: str) -> bytes:
    """A canonical response as an Anthropic `Message`; an Anthropic upstream's bytes pass through."""
    if response.raw is not None and response.raw_wire == WIRE:
        return rename_model(response.raw, response.model, public_model)
    choice = response.choices[0] if response.choices else None
    message = choice.message if choice else Message(role="assistant")
    body = {
        "id": message_id(response.id),
        "type": "message",
        "role": "assistant",
        "model": public_model,
        "content": blocks_out(message),
        "stop_reason": stop_reason(choice.finish_reason if choice else None),
        "stop_sequence": None,
        "usage": usage_out(response.usage),
    }
    return encode(body)


def blocks_out(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if message.reasoning:
        # No signature exists for reasoning from other backends; an empty one keeps the shape.
        blocks.append({"type": "thinking", "thinking": message.reasoning, "signature": ""})
    text = message.text()
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.tool_calls or ():
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": arguments_object(call.arguments)})
    return blocks


def arguments_object(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as `input`. Text that is not a JSON object (a model's broken
    output) cannot be an Anthropic `input`; it is kept under "arguments" rather than lost."""
    try:
        value = msgspec.json.decode(arguments) if arguments.strip() else {}
    except msgspec.DecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


def message_id(ident: str) -> str:
    """Anthropic clients expect `msg_` ids; another backend's id keeps its text after the prefix."""
    if ident.startswith("msg_"):
        return ident
    return "msg_" + (ident or os.urandom(12).hex())
