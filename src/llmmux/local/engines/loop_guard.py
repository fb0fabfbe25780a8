"""Stopping a local model that loops: the reply ends there, complete, as if the model had stopped.

`LoopGuardModel` wraps an engine's model and watches the text of every reply as it is
generated (content, reasoning and tool-call arguments, see `repetition.py`). When the tail
repeats, it tells the engine to stop and finishes the reply itself with `finish_reason:
"stop"` and the usage counted so far. `stop`, not `length`, on purpose: the reply is over
(more tokens would only add copies), and a client that sees `length` (Anthropic's
`max_tokens`, a Responses reply `incomplete`) asks the model to go on (Claude Code) or fails
the turn (Codex). The copies already generated stay in the reply.

A reply asked for whole is generated as a stream underneath, so the guard can stop it too,
and put together into one `chat.completion` at the end. Requests it cannot put together
exactly (several choices, log probabilities) run as they are, unguarded.

The engine's model is called with OpenAI chat JSON and emits OpenAI JSON (see `base.py`);
so does this wrapper, which makes it work alike for every engine.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import msgspec

from ..bridge import Emit
from ..repetition import LoopGuard, RepetitionDetector
from .base import EngineModel

log = logging.getLogger("llmmux.local")

_decode = msgspec.json.Decoder()
_encode = msgspec.json.Encoder()


class LoopGuardModel:
    """An engine's model whose replies stop where they start to loop (see the module docstring)."""

    def __init__(self, model: EngineModel, guard: LoopGuard, name: str) -> None:
        self.model = model
        self.guard = guard
        self.name = name
        self.parallel = model.parallel
        self.tools = model.tools
        self.schema_output = model.schema_output

    def chat(self, body: bytes, emit: Emit) -> None:
        try:
            request = _decode.decode(body)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict) or request.get("n", 1) != 1 or request.get("logprobs"):
            self.model.chat(body, emit)  # the engine says what is wrong, or does what we cannot rebuild
            return
        if request.get("stream"):
            watcher = _Watcher(self, emit, whole=None)
            self.model.chat(body, watcher.emit)
            return
        streamed = {**request, "stream": True, "stream_options": {"include_usage": True}, "return_progress": True}
        whole = _WholeReply()
        self.model.chat(_encode.encode(streamed), _Watcher(self, emit, whole=whole).emit)
        emit(whole.payload())

    def embed(self, body: bytes, emit: Emit) -> None:
        self.model.embed(body, emit)

    def close(self) -> None:
        self.model.close()


class _Watcher:
    """Relays one reply's payloads (or collects them into `whole`), watching the text for a loop."""

    def __init__(self, owner: LoopGuardModel, emit: Emit, whole: _WholeReply | None) -> None:
        self._owner = owner
        self._emit = emit
        self._whole = whole
        self._detector = RepetitionDetector(owner.guard)
        self._prompt_tokens = 0
        self._generated = 0
        self._done = False

    def emit(self, payload: bytes) -> bool:
        if self._done:
            return True
        if payload.startswith(b'{"error"'):
            return self._forward(payload, error=True)
        try:
            chunk = _decode.decode(payload)
        except msgspec.DecodeError:
            chunk = None
        if not isinstance(chunk, dict):  # not ours to judge: the provider reports it
            return self._forward(payload)
        progress = chunk.get("prompt_progress")
        if isinstance(progress, dict) and isinstance(progress.get("total"), int):
            self._prompt_tokens = progress["total"]
        choices = chunk.get("choices")
        text = _delta_text(choices[0]) if choices else ""
        if text:
            self._generated += 1
        looped = self._detector.feed(text)
        if self._whole is not None:
            self._whole.add(chunk)
        elif self._forward(payload):
            return True
        if looped:
            self._stop(chunk)
            return True
        return False

    def _forward(self, payload: bytes, *, error: bool = False) -> bool:
        if self._whole is not None:
            if error:
                self._whole.error = payload
            return False
        self._done = self._emit(payload)  # True: the client has gone, stop
        return self._done

    def _stop(self, chunk: dict[str, Any]) -> None:
        """End the reply as finished, with the usage so far; the engine stops at its next token."""
        self._done = True
        period = self._detector.period()
        owner = self._owner
        log.info(
            "%s: loop guard stopped a reply after %d tokens: it was repeating a %s-character unit",
            owner.name,
            self._generated,
            period,
        )
        head: dict[str, Any] = {key: chunk[key] for key in ("id", "created", "model") if key in chunk}
        head["object"] = "chat.completion.chunk"
        finish = {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {
            "prompt_tokens": self._prompt_tokens,
            "completion_tokens": self._generated,
            "total_tokens": self._prompt_tokens + self._generated,
        }
        if self._whole is not None:
            self._whole.add(finish)
            self._whole.usage = usage
            return
        if self._emit(_encode.encode(finish)):
            return
        self._emit(_encode.encode({**head, "choices": [], "usage": usage}))


def _delta_text(choice: Any) -> str:
    """The text a stream chunk adds: content, reasoning and tool-call names and arguments."""
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        return ""
    parts = [delta.get("content"), delta.get("reasoning_content")]
    for call in delta.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts += [function.get("name"), function.get("arguments")]
    return "".join(part for part in parts if isinstance(part, str))


class _WholeReply:
    """A `chat.completion` put together from the chunks of a reply generated as a stream."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.error: bytes | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {key: chunk[key] for key in ("id", "created", "model", "system_fingerprint") if key in chunk}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                self.content.append(delta["content"])
            if isinstance(delta.get("reasoning_content"), str):
                self.reasoning.append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or ():
                self._add_call(call)
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]

    def _add_call(self, call: dict[str, Any]) -> None:
        entry = self.calls.setdefault(
            call.get("index", len(self.calls)),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if call.get("id"):
            entry["id"] = call["id"]
        function = call.get("function") or {}
        for key in ("name", "arguments"):
            if isinstance(function.get(key), str):
                entry["function"][key] += function[key]

    def payload(self) -> bytes:
        if self.error is not None:
            return self.error
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.reasoning:
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [self.calls[index] for index in sorted(self.calls)]
        reply: dict[str, Any] = {
            "created": int(time.time()),
            **self.head,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish or "stop"}],
        }
        if self.usage is not None:
            reply["usage"] = self.usage
        return _encode.encode(reply)
