"""OpenAI chat JSON for engines that generate text token by token (MLX).

llama.cpp's engines speak OpenAI's format themselves; an engine that only yields text
needs the request read, stop sequences and tool-call markers found in the text as it
streams, and the reply written as a `chat.completion` or as `chat.completion.chunk`s.
That is this module; it knows nothing about any engine.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ..bridge import Emit


class ChatBody(msgspec.Struct, kw_only=True):
    """The fields of an OpenAI chat request a text-generating engine honours."""

    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    n: int = 1
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None

    @property
    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else [s for s in self.stop if s]

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


class RequestError(ValueError):
    """The request asks for something the engine cannot do: a 400 naming the field."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.param = param
        self.code = code


def decode_request(body: bytes) -> ChatBody:
    try:
        request = msgspec.json.decode(body, type=ChatBody)
    except msgspec.ValidationError as exc:
        raise RequestError(f"invalid request: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"the body is not JSON: {exc}") from None
    if request.n != 1:
        raise RequestError("this engine generates one choice per request (n must be 1)", "n")
    if request.logprobs:
        raise RequestError("this engine does not return logprobs", "logprobs")
    if request.response_format and request.response_format.get("type") not in (None, "text"):
        raise RequestError("this engine cannot constrain output to JSON (response_format)", "response_format")
    return request


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as Hugging Face chat templates expect them: text content as one string,
    tool-call arguments as objects rather than JSON strings."""
    shaped = []
    for message in messages:
        message = dict(message)
        content = message.get("content")
        if isinstance(content, list):
            texts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
            if len(texts) != len(content):
                raise RequestError("this model reads text only (no image or audio parts)", "messages")
            message["content"] = "".join(texts)
        elif content is None:
            message["content"] = ""
        if message.get("tool_calls"):
            message["tool_calls"] = [_decoded_arguments(call) for call in message["tool_calls"]]
        shaped.append(message)
    return shaped


def _decoded_arguments(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    try:
        arguments = msgspec.json.decode(function["arguments"])
    except msgspec.DecodeError:
        return call  # a template renders the text as it is
    return {**call, "function": {**function, "arguments": arguments}}


class TextScanner:
    """Finds stop sequences and a tool-call start marker in streamed text.

    Text that could still be the start of a marker is held back until it is known not to
    be one, so a client never sees half of a stop sequence.
    """

    def __init__(self, stops: list[str], tool_start: str | None) -> None:
        self._stops = stops
        self._tool_start = tool_start
        self._markers = [*stops, *([tool_start] if tool_start else [])]
        self._held = ""
        self.stopped = False
        self.tool_text: str | None = None
        """Set once the tool-call marker is seen: everything generated after it."""

    def feed(self, text: str) -> str:
        """The text that is safe to send now."""
        if self.tool_text is not None:
            self.tool_text += text
            return ""
        if self.stopped:
            return ""
        held = self._held + text
        cut = _first_marker(held, self._markers)
        if cut is not None:
            index, marker = cut
            self._held = ""
            if marker == self._tool_start and marker not in self._stops:
                self.tool_text = held[index + len(marker) :]
            else:
                self.stopped = True
            return held[:index]
        keep = _partial_suffix(held, self._markers)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep]

    def flush(self) -> str:
        """What was held back, once generation has ended."""
        held, self._held = self._held, ""
        return held


def _first_marker(text: str, markers: list[str]) -> tuple[int, str] | None:
    found = [(index, marker) for marker in markers if (index := text.find(marker)) >= 0]
    return min(found) if found else None


def _partial_suffix(text: str, markers: list[str]) -> int:
    """The length of the longest end of `text` that begins some marker."""
    longest = 0
    for marker in markers:
        for size in range(min(len(marker) - 1, len(text)), longest, -1):
            if marker.startswith(text[-size:]):
                longest = size
                break
    return longest


ToolParser = Callable[[str, Any], Any]


def parse_tool_calls(
    text: str, markers: tuple[str, str | None], parser: ToolParser, tools: Any
) -> list[dict[str, Any]]:
    """OpenAI `tool_calls` from the text after the first tool-call start marker (several
    calls may follow one another, each between the start and end `markers`)."""
    start, end = markers
    calls = []
    for block in text.split(end) if end else [text]:
        block = block.strip().removeprefix(start).strip()
        if not block:
            continue
        try:
            parsed = parser(block, tools)
        except (ValueError, KeyError) as exc:
            raise RequestError(f"the model wrote a tool call that cannot be parsed: {exc}") from None
        for call in parsed if isinstance(parsed, list) else [parsed]:
            arguments = call.get("arguments", {})
            calls.append(
                {
                    "id": call.get("id") or f"call_{secrets.token_hex(12)}",
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else msgspec.json.encode(arguments).decode(),
                    },
                }
            )
    return calls


class Reply:
    """Writes one request's reply: a `chat.completion`, or its chunks as they come."""

    def __init__(self, model: str, emit: Emit, *, stream: bool, include_usage: bool) -> None:
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.model = model
        self._emit = emit
        self._stream = stream
        self._include_usage = include_usage
        self._content: list[str] = []
        self.cancelled = False

    def start(self) -> None:
        if self._stream:
            self._chunk({"role": "assistant", "content": ""}, None)

    def text(self, text: str) -> None:
        if not text:
            return
        if self._stream:
            self._chunk({"content": text}, None)
        else:
            self._content.append(text)

    def finish(
        self, reason: str, prompt_tokens: int, completion_tokens: int, tool_calls: list[dict[str, Any]] | None = None
    ) -> None:
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not self._stream:
            message: dict[str, Any] = {"role": "assistant", "content": "".join(self._content) or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            elif message["content"] is None:
                message["content"] = ""
            self._send(
                {
                    "id": self.id,
                    "object": "chat.completion",
                    "created": self.created,
                    "model": self.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": reason}],
                    "usage": usage,
                }
            )
            return
        if tool_calls:
            self._chunk({"tool_calls": [{"index": i, **call} for i, call in enumerate(tool_calls)]}, None)
        self._chunk({}, reason)
        if self._include_usage:
            self._send(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                }
            )

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> None:
        self._send(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
        )

    def _send(self, payload: dict[str, Any]) -> None:
        if self._emit(msgspec.json.encode(payload)):
            self.cancelled = True
