"""Canonical `ChatChunk`s -> a Responses API event stream, for serving Responses clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ...errors import LLMMuxError
from ...types import ChatChunk, Message, ToolCall, ToolCallDelta, Usage
from ..sse import frame
from .response import ResponseShell, call_item, error_out, message_item, new_id, status_of, text_part

_encode = msgspec.json.encode


@dataclass(slots=True)
class _Item:
    """One output item as it streams: a message's text, or a function call's arguments."""

    kind: str  # "message" or "function_call"
    index: int  # output_index
    id: str
    text: str = ""  # a message's text, or a call's arguments
    call_id: str = ""
    name: str = ""
    status: str = "in_progress"

    def render(self) -> dict[str, Any]:
        if self.kind == "message":
            content = [text_part(self.text)] if self.status != "in_progress" else []
            return message_item(self.id, self.status, content)
        return call_item(self.id, ToolCall(self.call_id, self.name, self.text), self.status)


class StreamEncoder:
    """Writes one stream's chunks as Responses API events, numbered by `sequence_number`.

    >>> encoder = StreamEncoder(ResponseShell(request, "public-model"))
    >>> send(encoder.start())                                # response.created, response.in_progress
    >>> for chunk in chunks:                                 # doctest: +SKIP
    ...     send(encoder.encode(chunk))
    >>> send(encoder.finish())                               # the items' done events, response.completed

    Text opens a `message` item with one `output_text` part; each tool call opens a
    `function_call` item. An item is done when the next one starts or the stream ends, so
    items never interleave, as in OpenAI's own streams. `final` is the last response object.
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

    def start(self) -> bytes:
        response = self.shell.render("in_progress", [])
        return self._event("response.created", response=response) + self._event(
            "response.in_progress", response=response
        )

    def encode(self, chunk: ChatChunk) -> bytes:
        out: list[bytes] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # a response has one output
            if choice.delta.content:
                self._text(choice.delta.content, out)
            for call in choice.delta.tool_calls or ():
                self._tool(call, out)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
        if chunk.usage is not None:
            self._usage = chunk.usage
        return b"".join(out)

    def finish(self) -> bytes:
        """The open item's done events, then `response.completed` (or `response.incomplete`)."""
        status, incomplete = status_of(self._finish)
        out: list[bytes] = []
        self._close(out, "incomplete" if incomplete else "completed")
        self.final = self.shell.render(status, self._output(), self._usage or Usage(), incomplete=incomplete)
        out.append(self._event(f"response.{status}", response=self.final))
        return b"".join(out)

    def fail(self, error: LLMMuxError) -> bytes:
        """An `error` event, then `response.failed` with what was produced before the failure."""
        if self._open is not None:
            self._open.status = "incomplete"
        self.final = self.shell.render("failed", self._output(), self._usage, error=error)
        code = error_out(error)["code"]
        return self._event("error", code=code, message=error.message, param=error.param) + self._event(
            "response.failed", response=self.final
        )

    def message(self) -> Message:
        """What was streamed, as the assistant message a continuation replays."""
        text = "".join(i.text for i in self._items if i.kind == "message")
        calls = [ToolCall(i.call_id, i.name, i.text) for i in self._items if i.kind == "function_call"]
        return Message(role="assistant", content=text or None, tool_calls=calls or None)

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
            fresh = _Item(
                "function_call", len(self._items), new_id("fc"), call_id=call.id or new_id("call"), name=call.name or ""
            )
            item = self._calls[call.index] = self._add(fresh, out)
        if not call.arguments:
            return
        item.text += call.arguments
        if item is self._open:
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
        out.append(self._event("response.output_item.added", output_index=item.index, item=item.render()))
        return item

    def _close(self, out: list[bytes], status: str) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        item.status = status
        if item.kind == "message":
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
        else:
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    name=item.name,
                    arguments=item.text,
                )
            )
        out.append(self._event("response.output_item.done", output_index=item.index, item=item.render()))

    def _output(self) -> list[dict[str, Any]]:
        return [item.render() for item in self._items]

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return frame(_encode(payload), kind.encode())
