"""Serving clients that speak Ollama's API: /api/chat and /api/generate bodies in, Ollama JSON and NDJSON out.

Pure translation, no I/O; the other half of the Ollama wire format (see `ollama`, which
calls Ollama upstreams). Requests are validated with errors naming the offending field;
replies carry what Ollama's own carry (`created_at`, `done`, `done_reason`, token counts
and durations in nanoseconds), and errors are Ollama's `{"error": "..."}`.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..errors import InvalidRequest, LLMMuxError
from ..tags import taken
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Delta,
    ImagePart,
    Message,
    Part,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from .ollama import PASSTHROUGH_KEYS, WIRE, arguments_text, new_id
from .openai import rename_model

__all__ = [
    "GENERATE_WIRE",
    "StreamEncoder",
    "Timing",
    "decode_chat_request",
    "decode_generate_request",
    "encode_chat_response",
    "encode_error",
    "encode_generate_response",
]

GENERATE_WIRE = "ollama.generate"
ROLES = frozenset({"system", "user", "assistant", "tool"})

_encode = msgspec.json.encode


# -- requests: Ollama bodies to canonical --


class _InFunction(msgspec.Struct):
    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)


class _InToolCall(msgspec.Struct):
    function: _InFunction
    id: str | None = None


class _InMessage(msgspec.Struct):
    role: str
    content: str | None = None
    images: list[str] | None = None
    thinking: str | None = None
    tool_calls: list[_InToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _ToolFunction(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _InTool(msgspec.Struct):
    function: _ToolFunction
    type: str = "function"


class _Options(msgspec.Struct):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    num_predict: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None


_MODELLED_OPTIONS = frozenset(_Options.__struct_fields__)

Format = str | dict[str, Any] | None
KeepAlive = str | int | float | None
Think = bool | str | None


class _ChatIn(msgspec.Struct):
    model: str
    messages: list[_InMessage] = []
    tools: list[_InTool] | None = None
    format: Format = None
    options: dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: KeepAlive = None
    think: Think = None


class _GenerateIn(msgspec.Struct):
    model: str
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    images: list[str] | None = None
    format: Format = None
    options: dict[str, Any] | None = None
    stream: bool | None = None
    keep_alive: KeepAlive = None
    think: Think = None
    raw: bool | None = None
    template: str | None = None
    context: list[int] | None = None


def decode_chat_request(body: Any) -> ChatRequest:
    """Validate an /api/chat body and return it in canonical form."""
    body, tags = taken(body)
    wire = _convert(body, _ChatIn)
    if not wire.messages:
        raise InvalidRequest(
            "'messages' must contain at least one message "
            "(loading or unloading a model is not done through the gateway).",
            param="messages",
        )
    request = _common_in(wire, body, tags)
    request.messages = _messages_in(wire.messages)
    request.tools = (
        [
            Tool(name=t.function.name, description=t.function.description, parameters=t.function.parameters)
            for t in wire.tools
        ]
        if wire.tools
        else None
    )
    request.client_wire = WIRE
    return request.passing_through(body)


def decode_generate_request(body: Any) -> ChatRequest:
    """Validate an /api/generate body; the prompt (and system) become chat messages."""
    body, tags = taken(body)
    wire = _convert(body, _GenerateIn)
    if not wire.prompt and not wire.images:
        raise InvalidRequest(
            "'prompt' is required (loading or unloading a model is not done through the gateway).", param="prompt"
        )
    request = _common_in(wire, body, tags)
    messages = [Message(role="system", content=wire.system)] if wire.system else []
    messages.append(Message(role="user", content=_user_content(wire.prompt, wire.images, "images")))
    request.messages = messages
    for key in ("suffix", "raw", "template", "context"):
        if getattr(wire, key) is not None:
            request.extra[key] = getattr(wire, key)
    request.client_wire = GENERATE_WIRE
    return request


def _convert(body: Any, kind: type[Any]) -> Any:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("'model' is required.", param="model")
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None


def _common_in(wire: _ChatIn | _GenerateIn, body: dict[str, Any], tags: Any) -> ChatRequest:
    """What /api/chat and /api/generate share: the model, options, format, streaming and passthrough fields."""
    options = wire.options or {}
    opts = _options_in(options)
    extra = {key: body[key] for key in PASSTHROUGH_KEYS if body.get(key) is not None}
    leftovers = {k: v for k, v in options.items() if k not in _MODELLED_OPTIONS}
    if "num_ctx" in leftovers:
        extra["num_ctx"] = leftovers.pop("num_ctx")
    if leftovers:
        extra["options"] = leftovers
    return ChatRequest(
        model=wire.model,
        messages=[],
        stream=True if wire.stream is None else wire.stream,  # Ollama streams unless told not to
        include_usage=True,
        temperature=opts.temperature,
        top_p=opts.top_p,
        top_k=opts.top_k,
        max_tokens=opts.num_predict if opts.num_predict is None or opts.num_predict > 0 else None,
        stop=[opts.stop] if isinstance(opts.stop, str) else opts.stop,
        seed=opts.seed,
        presence_penalty=opts.presence_penalty,
        frequency_penalty=opts.frequency_penalty,
        response_format=_format_in(wire.format),
        extra=extra,
        tags=tags,
    )


def _options_in(options: dict[str, Any]) -> _Options:
    try:
        return msgspec.convert(options, _Options)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, prefix="options") from None


def _format_in(fmt: Format) -> dict[str, Any] | None:
    if not fmt:
        return None
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    raise InvalidRequest(f"'format' must be \"json\" or a JSON schema, got {fmt!r}.", param="format")


def _messages_in(messages: list[_InMessage]) -> list[Message]:
    out: list[Message] = []
    unanswered: list[ToolCall] = []  # the latest assistant's calls not yet matched by a tool result
    for index, m in enumerate(messages):
        role = m.role.lower()  # Ollama accepts any case
        if role not in ROLES:
            raise InvalidRequest(
                f"Invalid role {m.role!r} in messages[{index}]; expected one of {', '.join(sorted(ROLES))}.",
                param=f"messages[{index}].role",
            )
        calls = [
            ToolCall(
                id=c.id or f"call_{index}_{j}", name=c.function.name, arguments=arguments_text(c.function.arguments)
            )
            for j, c in enumerate(m.tool_calls or ())
        ]
        if calls:
            unanswered = list(calls)
        out.append(
            Message(
                role=role,  # type: ignore[arg-type]
                content=_user_content(m.content or "", m.images, f"messages[{index}].images"),
                name=m.tool_name if role == "tool" else None,
                tool_calls=calls or None,
                tool_call_id=_answered_call(m, unanswered) if role == "tool" else None,
                reasoning=m.thinking or None,
            )
        )
    return out


def _answered_call(m: _InMessage, unanswered: list[ToolCall]) -> str | None:
    """Which call a tool result answers: Ollama names the tool, other APIs need the call's id."""
    if m.tool_call_id:
        return m.tool_call_id
    match = next((c for c in unanswered if c.name == m.tool_name), unanswered[0] if unanswered else None)
    if match is None:
        return None
    unanswered.remove(match)
    return match.id


def _user_content(text: str, images: list[str] | None, param: str) -> str | list[Part]:
    if not images:
        return text
    parts: list[Part] = [TextPart(text)] if text else []
    parts.extend(
        ImagePart(url=f"data:{_image_type(b64, f'{param}[{i}]')};base64,{b64}") for i, b64 in enumerate(images)
    )
    return parts


_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def _image_type(b64: str, param: str) -> str:
    """The media type for a `data:` URL, from the image's first bytes (Ollama clients send none)."""
    try:
        head = base64.b64decode(b64[:16] + "=" * (-len(b64[:16]) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("Images must be base64-encoded.", param=param) from None
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "image/png")


# -- replies: canonical to Ollama JSON and NDJSON --


class Timing:
    """The gateway's own measure of Ollama's duration fields (nanoseconds; load time is not seen)."""

    __slots__ = ("_clock", "first_token", "started")

    def __init__(self, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._clock = clock
        self.started = clock()
        self.first_token: int | None = None

    def token(self) -> None:
        if self.first_token is None:
            self.first_token = self._clock()

    def metrics(self, usage: Usage | None) -> dict[str, int]:
        now = self._clock()
        first = self.first_token if self.first_token is not None else now
        usage = usage or Usage()
        values = {
            "total_duration": now - self.started,
            "prompt_eval_count": usage.prompt_tokens,
            "prompt_eval_duration": first - self.started,
            "eval_count": usage.completion_tokens,
            "eval_duration": now - first,
        }
        return {k: v for k, v in values.items() if v > 0}  # Ollama omits zero metrics


def encode_chat_response(response: ChatResponse, public_model: str, timing: Timing | None = None) -> bytes:
    """An /api/chat reply; an Ollama upstream's own bytes pass through with the public model name."""
    if response.raw is not None and response.raw_wire == WIRE:
        return rename_model(response.raw, response.model, public_model)
    message = response.choices[0].message if response.choices else Message(role="assistant")
    body = _reply_head(public_model, response.created)
    body["message"] = _assistant_out(message.text(), message.reasoning, message.tool_calls or [])
    return _encode(_done(body, response, timing))


def encode_generate_response(response: ChatResponse, public_model: str, timing: Timing | None = None) -> bytes:
    """An /api/generate reply."""
    message = response.choices[0].message if response.choices else Message(role="assistant")
    body = _reply_head(public_model, response.created)
    body["response"] = message.text()
    if message.reasoning:
        body["thinking"] = message.reasoning
    return _encode(_done(body, response, timing))


def _done(body: dict[str, Any], response: ChatResponse, timing: Timing | None) -> dict[str, Any]:
    finish = response.choices[0].finish_reason if response.choices else None
    body["done"] = True
    body["done_reason"] = _done_reason(finish)
    body.update((timing or Timing()).metrics(response.usage))
    return body


def _reply_head(model: str, created: float) -> dict[str, Any]:
    return {"model": model, "created_at": _iso(created)}


def _assistant_out(text: str, thinking: str | None, calls: list[ToolCall]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": text}
    if thinking:
        out["thinking"] = thinking
    if calls:
        out["tool_calls"] = [
            {"id": c.id, "function": {"index": i, "name": c.name, "arguments": _arguments_obj(c.arguments)}}
            for i, c in enumerate(calls)
        ]
    return out


def _arguments_obj(text: str) -> Any:
    # Ollama clients expect an object; text that does not parse is handed over as it came
    # rather than replaced by {}, so a tool never runs with silently changed arguments.
    try:
        return msgspec.json.decode(text) if text.strip() else {}
    except msgspec.DecodeError:
        return text


def _done_reason(finish: str | None) -> str:
    return "length" if finish == "length" else "stop"  # Ollama says "stop" after tool calls too


class StreamEncoder:
    """Canonical chunks to NDJSON lines for an /api/chat (or, with `generate`, /api/generate) client.

    Tool call deltas are gathered and sent whole, as Ollama does; the final `done` line,
    with `done_reason` and the metrics, goes out from `close()` once usage is known.
    """

    def __init__(
        self,
        public_model: str,
        *,
        generate: bool = False,
        timing: Timing | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.model = public_model
        self.generate = generate
        self.timing = timing or Timing()
        self._now = now
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments so far]
        self._finish: str | None = None
        self._usage: Usage | None = None

    def encode(self, chunk: ChatChunk) -> bytes:
        """Zero or more lines for one chunk."""
        if chunk.usage is not None:
            self._usage = chunk.usage
        lines = b""
        for choice in chunk.choices:
            if choice.index != 0:
                continue  # Ollama has one answer per request
            lines += self._delta(choice.delta)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                lines += self._flush_calls()
        return lines

    def close(self) -> bytes:
        """The final line: `done`, `done_reason` and the metrics."""
        lines = self._flush_calls()
        body = self._head()
        if self.generate:
            body["response"] = ""
        else:
            body["message"] = _assistant_out("", None, [])
        body["done"] = True
        body["done_reason"] = _done_reason(self._finish)
        body.update(self.timing.metrics(self._usage))
        return lines + _encode(body) + b"\n"

    def _delta(self, delta: Delta) -> bytes:
        for t in delta.tool_calls or ():
            call = self._calls.setdefault(t.index, ["", "", ""])
            call[0] = t.id or call[0]
            call[1] = t.name or call[1]
            call[2] += t.arguments or ""
        if not delta.content and not delta.reasoning:
            return b""
        self.timing.token()
        return self._line(delta.content or "", delta.reasoning, [])

    def _flush_calls(self) -> bytes:
        if not self._calls or self.generate:
            return b""
        gathered = sorted(self._calls.items())
        calls = [ToolCall(id=c[0] or new_id("call_"), name=c[1], arguments=c[2]) for _, c in gathered]
        self._calls = {}
        self.timing.token()
        return self._line("", None, calls)

    def _line(self, text: str, thinking: str | None, calls: list[ToolCall]) -> bytes:
        body = self._head()
        if self.generate:
            body["response"] = text
            if thinking:
                body["thinking"] = thinking
        else:
            body["message"] = _assistant_out(text, thinking, calls)
        body["done"] = False
        return _encode(body) + b"\n"

    def _head(self) -> dict[str, Any]:
        return {"model": self.model, "created_at": _iso(self._now())}


# -- errors --


def encode_error(error: LLMMuxError) -> bytes:
    """Ollama's error body, `{"error": "..."}`; also a stream's last line after a newline."""
    return _encode({"error": error.message})


def _iso(ts: float) -> str:
    """RFC 3339 in UTC, as Ollama's `created_at`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


_AT = re.compile(r"at `\$\.?([^`]*)`")


def _invalid(exc: msgspec.ValidationError, prefix: str = "") -> InvalidRequest:
    text = str(exc)
    match = _AT.search(text)
    field = match.group(1) if match else ""
    field = ".".join(p for p in (prefix, field) if p)
    reason = _AT.sub("", text).rstrip(" -")
    if field:
        return InvalidRequest(f"Invalid value for '{field}': {reason}.", param=field)
    return InvalidRequest(f"Invalid request: {reason}.")
