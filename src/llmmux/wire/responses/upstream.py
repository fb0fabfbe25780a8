"""Calling an upstream's own `/v1/responses`: the client's body out, its bytes back with a canonical view.

Where a Responses client meets a backend that serves the Responses API itself (OpenAI), the
body travels as the client sent it with only `model` rewritten (and what a step changed,
from `request_out`), and the reply's bytes travel
back untouched but for the model name (`raw`, wire `openai_responses`). The canonical view
decoded alongside is what llmmux itself needs: usage for accounting and budgets, text for
estimates and the request log, and a continuation's history.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from ...types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .. import MalformedReply
from ..passthrough import body_for
from ..sse import frame
from .request import GATEWAY_FIELDS, WIRE
from .request_out import SOURCES, canonical_keys
from .tools import CUSTOM_INPUT, flat_name

_encode = msgspec.json.encode
ENDING_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def encode_request(request: ChatRequest, model: str, *, stream: bool) -> bytes:
    """The client's Responses body for upstream model `model`: exactly as the client sent it, but
    for the keys made from a canonical field a step changed (`request_out.SOURCES`)."""
    body = body_for(request, SOURCES, lambda: canonical_keys(request), unlisted=())
    for key in GATEWAY_FIELDS:
        body.pop(key, None)
    body["model"] = model
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return _encode(body)


# -- the reply --


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: dict[str, Any] | None = None
    output_tokens_details: dict[str, Any] | None = None


class _Response(msgspec.Struct):
    id: str = ""
    object: str = ""
    created_at: int | float | None = None
    model: str = ""
    status: str | None = None
    output: list[dict[str, Any]] = []
    usage: _Usage | None = None
    incomplete_details: dict[str, Any] | None = None
    error: Any = None


_decoder = msgspec.json.Decoder(_Response)


def decode_response(data: bytes) -> ChatResponse:
    """A `response` object as a canonical reply, its bytes kept whole in `raw` for the client."""
    try:
        wire = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a response object: {exc}") from None
    if wire.object != "response":
        raise MalformedReply(f"expected a response object, got {wire.object!r}")
    return ChatResponse(
        id=wire.id,
        model=wire.model,
        created=int(wire.created_at or time.time()),
        choices=[Choice(message=message_of(wire.output), finish_reason=finish_of(wire))],
        usage=usage_of(wire.usage),
        raw=data,
        raw_wire=WIRE,
    )


def message_of(output: list[dict[str, Any]]) -> Message:
    """The output items as one assistant message: text, calls (namespaced names kept) and reasoning."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[str] = []
    for item in output:
        kind = item.get("type")
        if kind == "message":
            texts += [p.get("text") or "" for p in item.get("content") or () if p.get("type") == "output_text"]
        elif kind in ("function_call", "custom_tool_call"):
            calls.append(_call_of(item))
        elif kind == "reasoning":
            reasoning += [p.get("text") or "" for p in (item.get("summary") or []) + (item.get("content") or [])]
    return Message(
        role="assistant", content="".join(texts) or None, tool_calls=calls or None, reasoning="".join(reasoning) or None
    )


def _call_of(item: dict[str, Any]) -> ToolCall:
    """A call under the chat name the request's translation gives it, so history replays either way."""
    name, namespace = str(item.get("name", "")), item.get("namespace")
    arguments = item.get("arguments")
    if item.get("type") == "custom_tool_call":
        arguments = _encode({CUSTOM_INPUT: str(item.get("input", ""))}).decode()
    flat = flat_name(namespace, name) if isinstance(namespace, str) and namespace else name
    return ToolCall(id=str(item.get("call_id", "")), name=flat, arguments=str(arguments or ""))


def finish_of(wire: _Response) -> FinishReason:
    if wire.status == "incomplete":
        reason = (wire.incomplete_details or {}).get("reason")
        return "content_filter" if reason == "content_filter" else "length"
    if any(item.get("type") in ("function_call", "custom_tool_call") for item in wire.output):
        return "tool_calls"
    return "stop"


def usage_of(usage: _Usage | None) -> Usage | None:
    if usage is None:
        return None
    cached = (usage.input_tokens_details or {}).get("cached_tokens")
    reasoning = (usage.output_tokens_details or {}).get("reasoning_tokens")
    return Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens or usage.input_tokens + usage.output_tokens,
        cached_tokens=cached if isinstance(cached, int) else 0,
        reasoning_tokens=reasoning if isinstance(reasoning, int) else 0,
    )


# -- the stream --


class _Event(msgspec.Struct):
    type: str = ""
    response: _Response | None = None
    delta: str | None = None
    output_index: int = 0
    item: dict[str, Any] | None = None


_event_decoder = msgspec.json.Decoder(_Event)


class StreamTranslator:
    """An upstream's Responses events -> canonical chunks, one per event, each carrying its frame.

    >>> translator = StreamTranslator()
    >>> for name, data in parser.feed(received):            # doctest: +SKIP
    ...     yield translator.feed(name, data)

    Every event becomes a chunk, so the pipeline sees progress as soon as the upstream
    sends any; text, reasoning and call deltas fill its choice, and the ending event
    (`response.completed`, `.incomplete` or `.failed`) its usage. `finished` is then true.
    """

    def __init__(self) -> None:
        self.id = ""
        self.model = ""
        self.created = int(time.time())
        self.finished = False
        self._calls: dict[int, int] = {}  # output_index -> canonical tool call index

    def feed(self, name: bytes, data: bytes) -> ChatChunk:
        try:
            event = _event_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedReply(f"not a Responses event: {exc}") from None
        kind = event.type or name.decode(errors="replace")
        if event.response is not None:
            self.id, self.model = event.response.id or self.id, event.response.model or self.model
        chunk = ChatChunk(
            id=self.id,
            model=self.model,
            created=self.created,
            choices=self._choices(kind, event),
            raw=frame(data, kind.encode()),
            raw_wire=WIRE,
        )
        if kind in ENDING_EVENTS:
            self.finished = True
            response = event.response
            chunk.usage = usage_of(response.usage) if response is not None else None
            if response is not None and kind != "response.failed":
                chunk.choices = [ChunkChoice(delta=Delta(), finish_reason=finish_of(response))]
        return chunk

    def _choices(self, kind: str, event: _Event) -> list[ChunkChoice]:
        delta = self._delta(kind, event)
        return [ChunkChoice(delta=delta)] if delta is not None else []

    def _delta(self, kind: str, event: _Event) -> Delta | None:
        if kind == "response.output_text.delta" and event.delta:
            return Delta(content=event.delta)
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta") and event.delta:
            return Delta(reasoning=event.delta)
        item = event.item or {}
        if kind == "response.output_item.added" and item.get("type") in ("function_call", "custom_tool_call"):
            index = self._calls[event.output_index] = len(self._calls)
            call = ToolCallDelta(index=index, id=item.get("call_id"), name=_call_of(item).name)
            return Delta(tool_calls=[call])
        call_delta = kind in ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta")
        if call_delta and event.delta and event.output_index in self._calls:
            call = ToolCallDelta(index=self._calls[event.output_index], arguments=event.delta)
            return Delta(tool_calls=[call])
        return None


def rename_model(raw: bytes, current: str, public: str) -> bytes:
    """A response body or event frame with the public model name, touching nothing else.

    A JSON string cannot hold an unescaped `"model":"x"`, so the first match is the response
    object's own field; events without the response object have none and pass as they are.
    """
    if current == public:
        return raw
    old = _encode(current)
    for separator in (b'"model":', b'"model": '):
        at = raw.find(separator + old)
        if at >= 0:
            return raw[:at] + separator + _encode(public) + raw[at + len(separator) + len(old) :]
    return raw
