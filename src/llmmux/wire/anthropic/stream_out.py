"""Canonical `ChatChunk`s -> an Anthropic event stream, for serving Anthropic clients."""

from __future__ import annotations

from typing import Any

from ...errors import LLMMuxError
from ...types import ChatChunk, Delta, ToolCallDelta, Usage
from ..sse import frame
from .common import WIRE, encode, stop_reason, usage_out
from .errors import encode_error
from .response import message_id


class StreamEncoder:
    """Writes one stream's chunks as Anthropic SSE events; one encoder per response.

    >>> encoder = StreamEncoder("claude-public")
    >>> for chunk in chunks:                                 # doctest: +SKIP
    ...     send(encoder.encode(chunk))
    >>> send(encoder.finish())                               # message_delta, message_stop

    Content blocks open and close as the deltas change kind (thinking, text, one block per
    tool call), numbered from 0 as Anthropic numbers them. Input token counts are only known
    at the end of most streams, so `message_start` reports what the first chunk knew and
    `message_delta` carries the final cumulative usage, as Anthropic's own streams may.
    Chunks that came from an Anthropic upstream carry its frames in `raw`; those pass
    through unchanged but for the model name.
    """

    def __init__(self, public_model: str) -> None:
        self.public_model = public_model
        self._started = False
        self._passthrough = False
        self._block: tuple[str, int] | None = None  # (kind, canonical tool index or -1) of the open block
        self._next_index = 0
        self._tool_blocks: dict[int, int] = {}  # canonical tool call index -> block index
        self._stop: str | None = None
        self._usage: Usage | None = None

    def encode(self, chunk: ChatChunk) -> bytes:
        if chunk.raw is not None and chunk.raw_wire == WIRE:
            self._passthrough = True
            return _rename_model(chunk.raw, chunk.model, self.public_model)
        out: list[bytes] = []
        if not self._started:
            out.append(self._message_start(chunk))
        for choice in chunk.choices[:1]:  # Anthropic messages have exactly one choice
            self._delta(choice.delta, out)
            if choice.finish_reason is not None:
                self._stop = stop_reason(choice.finish_reason)
                self._close(out)
        if chunk.usage is not None:
            self._usage = chunk.usage
        return b"".join(out)

    def finish(self) -> bytes:
        """The closing events, once the chunks have run out."""
        if self._passthrough:
            return b""  # the upstream's own message_delta and message_stop went through
        out: list[bytes] = []
        if not self._started:
            out.append(self._message_start(None))
        self._close(out)
        delta = {"stop_reason": self._stop or "end_turn", "stop_sequence": None}
        out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_out(self._usage)}))
        out.append(_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    @staticmethod
    def error(error: LLMMuxError) -> bytes:
        """An `error` event, for a failure after the response has started."""
        return frame(encode_error(error), b"error")

    def _message_start(self, chunk: ChatChunk | None) -> bytes:
        self._started = True
        usage = usage_out(chunk.usage if chunk else None)
        message: dict[str, Any] = {
            "id": message_id(chunk.id if chunk else ""),
            "type": "message",
            "role": "assistant",
            "model": self.public_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return _event("message_start", {"type": "message_start", "message": message})

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        if delta.reasoning:
            index = self._open(("thinking", -1), {"type": "thinking", "thinking": "", "signature": ""}, out)
            out.append(_block_delta(index, {"type": "thinking_delta", "thinking": delta.reasoning}))
        if delta.content:
            index = self._open(("text", -1), {"type": "text", "text": ""}, out)
            out.append(_block_delta(index, {"type": "text_delta", "text": delta.content}))
        for call in delta.tool_calls or ():
            self._tool_delta(call, out)

    def _tool_delta(self, call: ToolCallDelta, out: list[bytes]) -> None:
        index = self._tool_blocks.get(call.index)
        if index is None:
            block = {"type": "tool_use", "id": call.id or f"toolu_{call.index}", "name": call.name or "", "input": {}}
            index = self._tool_blocks[call.index] = self._open(("tool_use", call.index), block, out)
        if call.arguments:
            out.append(_block_delta(index, {"type": "input_json_delta", "partial_json": call.arguments}))

    def _open(self, kind: tuple[str, int], block: dict[str, Any], out: list[bytes]) -> int:
        """The index of the open block of `kind`, closing the open one and starting it if needed."""
        if self._block == kind:
            return self._next_index - 1
        self._close(out)
        index = self._next_index
        self._next_index += 1
        self._block = kind
        start = {"type": "content_block_start", "index": index, "content_block": block}
        out.append(_event("content_block_start", start))
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._block is not None:
            out.append(_event("content_block_stop", {"type": "content_block_stop", "index": self._next_index - 1}))
            self._block = None


def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
    return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})


def _event(name: str, payload: dict[str, Any]) -> bytes:
    return frame(encode(payload), name.encode())


def _rename_model(frames: bytes, current: str, public: str) -> bytes:
    """The public model name in `message_start`; other frames carry none and pass untouched.

    An escaped `"model":"x"` inside a JSON string reads `\\"model\\":`, so the first exact
    match is `message_start`'s own field (the same argument as `wire.openai.rename_model`).
    """
    if current == public:
        return frames
    for separator in (b'"model":', b'"model": '):
        needle = separator + encode(current)
        at = frames.find(needle)
        if at >= 0:
            return frames[:at] + separator + encode(public) + frames[at + len(needle) :]
    return frames
