"""Canonical `ChatChunk`s -> a Responses API event stream, for serving Responses clients.

Chunks from an upstream's own Responses API carry its event frames (`raw`); those pass
through untouched but for the model name, and the encoder only watches them go by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ...errors import LLMMuxError
from ...types import ChatChunk, Message, ToolCall, ToolCallDelta, Usage
from ..sse import frame
from .request import WIRE
from .response import (
    ResponseShell,
    call_item,
    custom_input,
    error_out,
    message_item,
    new_id,
    reasoning_item,
    status_of,
    text_part,
)
from .tools import ToolNames
from .upstream import ENDING_EVENTS, rename_model

_encode = msgspec.json.encode


@dataclass(slots=True)
class _Item:
    """One output item as it streams: reasoning or a message's text, or a call's arguments."""

    kind: str  # "reasoning", "message" or "function_call"
    index: int  # output_index
    id: str
    text: str = ""  # the reasoning, a message's text, or a call's arguments
    call_id: str = ""
    name: str = ""
    status: str = "in_progress"
    custom: bool = False  # a call to a custom tool: its input goes out whole when it is done

    def render(self, names: ToolNames) -> dict[str, Any]:
        done = self.status != "in_progress"
        if self.kind == "reasoning":
            return reasoning_item(self.id, self.text if done else None)
        if self.kind == "message":
            return message_item(self.id, self.status, [text_part(self.text)] if done else [])
        arguments = self.text if done or not self.custom else ""
        return call_item(self.id, ToolCall(self.call_id, self.name, arguments), self.status, names)


class StreamEncoder:
    """Writes one stream's chunks as Responses API events, numbered by `sequence_number`.

    >>> encoder = StreamEncoder(ResponseShell(request, "public-model"))
    >>> send(encoder.start())                                # response.created, response.in_progress
    >>> for chunk in chunks:                                 # doctest: +SKIP
    ...     send(encoder.encode(chunk))
    >>> send(encoder.finish())                               # the items' done events, response.completed

    Reasoning opens a `reasoning` item, text a `message` item with one `output_text` part,
    each tool call a `function_call` (or `custom_tool_call`) item. An item is done when the
    next one starts or the stream ends, so items never interleave, as in OpenAI's own
    streams. `final` is the last response object.
    """

    def __init__(self, shell: ResponseShell) -> None:
        self.shell = shell
        self.final: dict[str, Any] | None = None
        self._sequence = 0
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}  # canonical tool call index -> its item
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._started = False
        self._passthrough = False
        self._calls_seen: dict[int, ToolCall] = {}  # what a passed-through stream called, for `message()`
        self._passed_text: list[str] = []

    def start(self) -> bytes:
        """`response.created` and `response.in_progress`; `encode` sends them before its first events."""
        self._started = True
        response = self.shell.render("in_progress", [])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def encode(self, chunk: ChatChunk) -> bytes:
        if chunk.raw is not None and chunk.raw_wire == WIRE:
            return self._pass(chunk)
        out: list[bytes] = [] if self._started else [self.start()]
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # a response has one output
            if choice.delta.reasoning:
                self._reasoning(choice.delta.reasoning, out)
            if choice.delta.content:
                self._text(choice.delta.content, out)
            for call in choice.delta.tool_calls or ():
                self._tool(call, out)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
        if chunk.usage is not None:
            self._usage = chunk.usage
        return b"".join(out)

    def _pass(self, chunk: ChatChunk) -> bytes:
        """An upstream Responses event, as it came but for the model; what it says is noted."""
        self._passthrough = True
        self.shell.id = chunk.id or self.shell.id
        for choice in chunk.choices:
            self._passed_text.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or ():
                seen = self._calls_seen.get(call.index) or ToolCall(call.id or "", call.name or "", "")
                self._calls_seen[call.index] = ToolCall(seen.id, seen.name, seen.arguments + (call.arguments or ""))
        raw = chunk.raw or b""
        kind = raw[len(b"event: ") : raw.find(b"\n")] if raw.startswith(b"event: ") else b""
        if kind.decode() in ENDING_EVENTS:
            response = msgspec.json.decode(raw[raw.find(b"data: ") + 6 :]).get("response")
            if isinstance(response, dict):
                response["model"] = self.shell.public
                self.final = response
        return rename_model(raw, chunk.model, self.shell.public)

    def finish(self) -> bytes:
        """The open item's done events, then `response.completed` (or `response.incomplete`)."""
        if self._passthrough:
            return b""  # the upstream's own ending event went through
        status, incomplete = status_of(self._finish)
        out: list[bytes] = [] if self._started else [self.start()]
        self._close(out, "incomplete" if incomplete else "completed")
        self.final = self.shell.render(status, self._output(), self._usage or Usage(), incomplete=incomplete)
        out.append(self._event(f"response.{status}", response=self.final))
        return b"".join(out)

    def fail(self, error: LLMMuxError) -> bytes:
        """An `error` event, then `response.failed` with what was produced before the failure."""
        if self._open is not None:
            self._open.status = "incomplete"
        start = b"" if self._started or self._passthrough else self.start()
        self.final = self.shell.render("failed", self._output(), self._usage, error=error)
        code = error_out(error)["code"]
        return (
            start
            + self._event("error", code=code, message=error.message, param=error.param)
            + self._event("response.failed", response=self.final)
        )

    def message(self) -> Message:
        """What was streamed, as the assistant message a continuation replays."""
        if self._passthrough:
            text, calls = "".join(self._passed_text), list(self._calls_seen.values())
        else:
            text = "".join(i.text for i in self._items if i.kind == "message")
            calls = [ToolCall(i.call_id, i.name, i.text) for i in self._items if i.kind == "function_call"]
        return Message(role="assistant", content=text or None, tool_calls=calls or None)

    def _reasoning(self, delta: str, out: list[bytes]) -> None:
        item = self._open if self._open is not None and self._open.kind == "reasoning" else None
        if item is None:
            item = self._add(_Item("reasoning", len(self._items), new_id("rs")), out)
        item.text += delta
        out.append(
            self._event(
                "response.reasoning_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=delta,
            )
        )

    def _text(self, delta: str, out: list[bytes]) -> None:
        item = self._open if self._open is not None and self._open.kind == "message" else None
        if item is None:
            item = self._add(_Item("message", len(self._items), new_id("msg")), out)
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=0,
                    part=text_part(""),
                )
            )
        item.text += delta
        out.append(
            self._event(
                "response.output_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=delta,
                logprobs=[],
            )
        )

    def _tool(self, call: ToolCallDelta, out: list[bytes]) -> None:
        item = self._calls.get(call.index)
        if item is None:
            name = call.name or ""
            fresh = _Item(
                "function_call",
                len(self._items),
                new_id("ctc" if self.shell.names.origin(name).custom else "fc"),
                call_id=call.id or new_id("call"),
                name=name,
                custom=self.shell.names.origin(name).custom,
            )
            item = self._calls[call.index] = self._add(fresh, out)
        if not call.arguments:
            return
        item.text += call.arguments
        if item is self._open and not item.custom:
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=call.arguments,
                )
            )
        # A fragment for a call already done is kept for the final response; its events are out.

    def _add(self, item: _Item, out: list[bytes]) -> _Item:
        self._close(out, "completed")
        self._items.append(item)
        self._open = item
        out.append(
            self._event("response.output_item.added", output_index=item.index, item=item.render(self.shell.names))
        )
        return item

    def _close(self, out: list[bytes], status: str) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        item.status = status
        if item.kind == "reasoning":
            out.append(
                self._event(
                    "response.reasoning_text.done",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=0,
                    text=item.text,
                )
            )
        elif item.kind == "message":
            out.append(
                self._event(
                    "response.output_text.done",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=0,
                    text=item.text,
                    logprobs=[],
                )
            )
            out.append(
                self._event(
                    "response.content_part.done",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=0,
                    part=text_part(item.text),
                )
            )
        elif item.custom:
            text = custom_input(item.text)
            fields = {"item_id": item.id, "output_index": item.index}
            out.append(self._event("response.custom_tool_call_input.delta", **fields, delta=text))
            out.append(self._event("response.custom_tool_call_input.done", **fields, input=text))
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    name=self.shell.names.origin(item.name).name,
                    arguments=item.text,
                )
            )
        out.append(
            self._event("response.output_item.done", output_index=item.index, item=item.render(self.shell.names))
        )

    def _output(self) -> list[dict[str, Any]]:
        return [item.render(self.shell.names) for item in self._items]

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return frame(_encode(payload), kind.encode())
