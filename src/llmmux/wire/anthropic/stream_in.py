"""An Anthropic event stream -> canonical `ChatChunk`s, one event at a time."""

from __future__ import annotations

import time

import msgspec

from ...types import ChatChunk, ChunkChoice, Delta, FinishReason, ToolCallDelta
from .. import MalformedReply
from ..sse import frame
from .common import WIRE, UsageCounts, WireUsage, encode, finish_reason
from .errors import stream_error
from .response import WireBlock


class _EventMessage(msgspec.Struct):
    id: str = ""
    model: str = ""
    usage: WireUsage | None = None


class _EventDelta(msgspec.Struct):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct):
    type: str
    index: int = 0
    message: _EventMessage | None = None
    content_block: WireBlock | None = None
    delta: _EventDelta | None = None
    usage: WireUsage | None = None


_decoder = msgspec.json.Decoder(_Event)


class StreamTranslator:
    """Turns one Anthropic stream's events into canonical chunks; one translator per stream.

    >>> translator = StreamTranslator("claude")
    >>> for name, data in parser.feed(received):          # doctest: +SKIP
    ...     chunk = translator.feed(name, data)
    ...     if chunk is not None:
    ...         yield chunk
    >>> translator.finished                                # message_stop arrived

    Each event yields at most one chunk. The assistant role rides on the first chunk with
    content rather than on `message_start`, so an error event right after `message_start`
    still fails the attempt before any byte reaches the client and a fallback can answer.
    Tool calls are numbered in order of their content blocks. Usage arrives as a final
    usage-only chunk at `message_stop`. Each chunk carries, in `raw`, the SSE frames of the
    events it came from (and of the events before it that made no chunk), so an Anthropic
    client can be served the upstream's events unchanged.
    """

    def __init__(self, provider: str, *, created: int | None = None) -> None:
        self.provider = provider
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.model = ""
        self.finished = False
        self._role_sent = False
        self._tools: dict[int, int] = {}  # content block index -> tool call index
        self._usage = UsageCounts()
        self._raw: list[bytes] = []

    def feed(self, name: bytes, data: bytes) -> ChatChunk | None:
        """The chunk for one SSE event (`name` may be empty; the data's `type` decides)."""
        try:
            event = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedReply(f"not an Anthropic stream event: {exc}") from None
        if event.type == "error":
            raise stream_error(data, self.provider)
        self._raw.append(_frame(name or event.type.encode(), data))
        chunk = self._translate(event)
        if chunk is not None:
            chunk.raw = b"".join(self._raw)
            self._raw.clear()
        return chunk

    def _translate(self, event: _Event) -> ChatChunk | None:
        kind = event.type
        if kind == "message_start" and event.message is not None:
            self.id, self.model = event.message.id, event.message.model
            self._usage.update(event.message.usage)
        elif kind == "content_block_start" and event.content_block is not None:
            return self._block_start(event.index, event.content_block)
        elif kind == "content_block_delta" and event.delta is not None:
            return self._block_delta(event.index, event.delta)
        elif kind == "message_delta":
            self._usage.update(event.usage)
            reason = finish_reason(event.delta.stop_reason if event.delta else None)
            if reason is not None:
                return self._chunk(Delta(), reason)
        elif kind == "message_stop":
            self.finished = True
            return ChatChunk(
                id=self.id,
                model=self.model,
                created=self.created,
                choices=[],
                usage=self._usage.canonical(),
                raw_wire=WIRE,
            )
        # ping, content_block_stop and event types added after this was written carry nothing.
        return None

    def _block_start(self, index: int, block: WireBlock) -> ChatChunk | None:
        if block.type == "tool_use":
            number = self._tools[index] = len(self._tools)
            arguments = encode(block.input).decode() if block.input else ""
            call = ToolCallDelta(index=number, id=block.id, name=block.name, arguments=arguments)
            return self._chunk(Delta(tool_calls=[call]))
        if block.type == "text" and block.text:
            return self._chunk(Delta(content=block.text))
        if block.type == "thinking" and block.thinking:
            return self._chunk(Delta(reasoning=block.thinking))
        return None

    def _block_delta(self, index: int, delta: _EventDelta) -> ChatChunk | None:
        if delta.type == "text_delta" and delta.text:
            return self._chunk(Delta(content=delta.text))
        if delta.type == "input_json_delta" and delta.partial_json and index in self._tools:
            call = ToolCallDelta(index=self._tools[index], arguments=delta.partial_json)
            return self._chunk(Delta(tool_calls=[call]))
        if delta.type == "thinking_delta" and delta.thinking:
            return self._chunk(Delta(reasoning=delta.thinking))
        # signature_delta and citations_delta have no canonical field; `raw` keeps them.
        return None

    def _chunk(self, delta: Delta, finish: FinishReason | None = None) -> ChatChunk:
        if not self._role_sent:
            delta.role = "assistant"
            self._role_sent = True
        return ChatChunk(
            id=self.id,
            model=self.model,
            created=self.created,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            raw_wire=WIRE,
        )


def _frame(name: bytes, data: bytes) -> bytes:
    """The event as SSE again; a multi-line data field keeps one `data:` line per line."""
    if b"\n" in data:
        data = data.replace(b"\n", b"\ndata: ")
    return frame(data, name)
