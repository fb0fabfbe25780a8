"""Ollama's native API: wire types and translation between it and the canonical types.

Pure translation, no I/O. This module holds what calling an Ollama upstream needs (local
Ollama, or Ollama Cloud at https://ollama.com); `ollama_frontdoor` holds the other
direction, serving clients that speak Ollama's API, on the same wire types. Shapes follow
Ollama's docs/api.md and the official `ollama` Python client:

* requests put sampling settings under `options` (`num_predict` is max tokens, `num_ctx`
  the context window), images are bare base64 strings in a message's `images`, tool call
  arguments are JSON objects and tool results are `tool` messages naming the tool;
* replies are one JSON object, or NDJSON lines whose last has `done: true`, the
  `done_reason` and the token counts (`prompt_eval_count`, `eval_count`);
* errors are `{"error": "..."}` with an HTTP status, or a stream's last line.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from ..errors import InvalidRequest
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    ImagePart,
    Message,
    ModelInfo,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from . import ErrorReply, MalformedReply
from .openai import error_message
from .passthrough import Sources, body_for

__all__ = [
    "CONTEXT_KEYS",
    "WIRE",
    "ErrorReply",
    "MalformedReply",
    "Progress",
    "StreamDecoder",
    "arguments_text",
    "context_length",
    "decode_chat_response",
    "decode_model_list",
    "decode_progress",
    "encode_chat_request",
    "error_message",
    "new_id",
]

WIRE = "ollama"
GATEWAY_FIELDS = ("provider", "provider_hint", "capability")
CONTEXT_KEYS = ("num_ctx", "context_length", "ctx_size")
"""Request `extra` keys a client may use for the context window; sent as `options.num_ctx`."""
PASSTHROUGH_KEYS = ("keep_alive", "think", "logprobs", "top_logprobs")
"""Top-level Ollama fields a client may send through `extra` (e.g. the OpenAI SDK's `extra_body`)."""

_encode = msgspec.json.encode


# -- wire types: only the fields llmmux reads --


class _Function(msgspec.Struct):
    name: str = ""
    arguments: dict[str, Any] | str | None = None


class _ToolCall(msgspec.Struct):
    function: _Function
    id: str | None = None


class _Message(msgspec.Struct):
    role: str = "assistant"
    content: str | None = None
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _Reply(msgspec.Struct):
    model: str = ""
    created_at: str = ""
    message: _Message | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    logprobs: list[Any] | None = None
    error: Any = None


class Progress(msgspec.Struct, omit_defaults=True):
    """One line of `/api/pull`'s stream: a status, and byte counts while a layer downloads."""

    status: str = ""
    digest: str | None = None
    total: int | None = None
    completed: int | None = None


class _Details(msgspec.Struct):
    family: str | None = None
    parameter_size: str | None = None
    quantization_level: str | None = None


class _TagModel(msgspec.Struct):
    name: str = ""
    model: str = ""
    size: int | None = None
    details: _Details | None = None
    context_length: int | None = None


class _Tags(msgspec.Struct):
    models: list[_TagModel] = []


class _ProgressLine(Progress):
    error: Any = None


_reply_decoder = msgspec.json.Decoder(_Reply)
_progress_decoder = msgspec.json.Decoder(_ProgressLine)


# -- upstream direction: canonical request to /api/chat --


def encode_chat_request(request: ChatRequest, model: str, *, stream: bool) -> bytes:
    """The /api/chat body asking `model`; `stream` is always explicit since Ollama defaults to streaming."""
    if request.passthrough is not None and request.client_wire == WIRE:
        body = body_for(request, SOURCES, lambda: _request_out(request))
        for key in GATEWAY_FIELDS:
            body.pop(key, None)
    else:
        body = _request_out(request)
    body["model"] = model
    body["stream"] = stream
    return _encode(body)


_OPTIONS = ("temperature", "top_p", "top_k", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty")
SOURCES: Sources = {
    **{key: () for key in ("model", "stream", *GATEWAY_FIELDS)},
    "messages": ("messages",),
    "tools": ("tools", "tool_choice"),
    "format": ("response_format", "extra"),
    "options": (*_OPTIONS, "extra"),
}
"""What each key of an /api/chat body is made from, for a body that passes through; the
others (`keep_alive`, `think`, ...) are in `ChatRequest.extra`."""


def _request_out(request: ChatRequest) -> dict[str, Any]:
    if request.n is not None and request.n > 1:
        raise InvalidRequest("Ollama returns one choice per request; 'n' must be 1.", param="n")
    body: dict[str, Any] = {"messages": _messages_out(request.messages)}
    if request.tools and request.tool_choice != "none":
        # Ollama has no tool_choice; "none" is honoured by not offering the tools.
        body["tools"] = [_tool_out(t) for t in request.tools]
    fmt = _format_out(request.response_format) if request.response_format else request.extra.get("format")
    if fmt:
        body["format"] = fmt
    options = _options_out(request)
    if options:
        body["options"] = options
    for key in PASSTHROUGH_KEYS:
        if request.extra.get(key) is not None:
            body[key] = request.extra[key]
    return body


def _options_out(request: ChatRequest) -> dict[str, Any]:
    extra_options = request.extra.get("options")
    options: dict[str, Any] = dict(extra_options) if isinstance(extra_options, dict) else {}
    for key in ("temperature", "top_p", "top_k", "seed", "stop", "presence_penalty", "frequency_penalty"):
        value = getattr(request, key)
        if value is not None:
            options[key] = value
    if request.max_tokens is not None:
        options["num_predict"] = request.max_tokens
    context = next((request.extra[k] for k in CONTEXT_KEYS if request.extra.get(k) is not None), None)
    if context is not None:
        if isinstance(context, bool) or not isinstance(context, int) or context <= 0:
            raise InvalidRequest(f"The context window must be a positive integer, got {context!r}.", param="num_ctx")
        options["num_ctx"] = context
    return options


def _format_out(response_format: dict[str, Any]) -> str | dict[str, Any] | None:
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequest("A json_schema response_format needs 'json_schema.schema'.", param="response_format")
        return schema
    raise InvalidRequest(f"Ollama cannot produce response_format {kind!r}.", param="response_format")


def _messages_out(messages: list[Message]) -> list[dict[str, Any]]:
    tool_names: dict[str, str] = {}  # tool call id -> function name, for the tool results that follow
    out = []
    for index, m in enumerate(messages):
        for call in m.tool_calls or ():
            tool_names[call.id] = call.name
        out.append(_message_out(m, index, tool_names))
    return out


def _message_out(m: Message, index: int, tool_names: dict[str, str]) -> dict[str, Any]:
    text, images = _content_out(m.content, index)
    out: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": text}
    if images:
        out["images"] = images
    if m.reasoning and m.role == "assistant":
        out["thinking"] = m.reasoning
    if m.tool_calls:
        out["tool_calls"] = [_tool_call_out(c, index) for c in m.tool_calls]
    if m.role == "tool":
        name = tool_names.get(m.tool_call_id or "") or m.name
        if name:
            out["tool_name"] = name
    return out


def _content_out(content: str | list[Part] | None, index: int) -> tuple[str, list[str]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts: list[str] = []
    images: list[str] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ImagePart):
            images.append(_image_out(part.url, f"messages[{index}].content[{j}]"))
        else:
            kind = part.data.get("type", "unknown")
            raise InvalidRequest(f"Ollama cannot take {kind!r} content parts.", param=f"messages[{index}].content[{j}]")
    return "".join(texts), images


def _image_out(url: str, param: str) -> str:
    """Ollama takes bare base64: strip a `data:` URL's header; it cannot fetch web URLs."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        if header.endswith(";base64") and data:
            return data
        raise InvalidRequest("An image data: URL must be base64-encoded.", param=param)
    if "://" in url:
        raise InvalidRequest("Ollama takes images as base64 data: URLs, not links to fetch.", param=param)
    return url  # already bare base64


def _tool_out(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def _tool_call_out(call: ToolCall, index: int) -> dict[str, Any]:
    text = call.arguments.strip()
    try:
        arguments = msgspec.json.decode(text) if text else {}
    except msgspec.DecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"Tool call {call.id or call.name!r} has arguments that are not a JSON object; Ollama needs one.",
            param=f"messages[{index}].tool_calls",
        )
    return {"function": {"name": call.name, "arguments": arguments}}


# -- upstream direction: /api/chat replies to canonical --


def decode_chat_response(data: bytes) -> ChatResponse:
    """A non-streaming /api/chat reply."""
    reply = _decode_reply(data)
    if reply.message is None:
        raise MalformedReply("chat reply without a message")
    message = reply.message
    calls = _tool_calls_in(message.tool_calls)
    content = message.content if message.content or not calls else None  # OpenAI's null beside tool calls
    return ChatResponse(
        id=new_id("chatcmpl-"),
        model=reply.model,
        created=_timestamp(reply.created_at),
        choices=[
            Choice(
                message=Message(
                    role="assistant", content=content, tool_calls=calls or None, reasoning=message.thinking or None
                ),
                finish_reason=_finish_reason(reply.done_reason, bool(calls)),
                logprobs=_logprobs(reply),
            )
        ],
        usage=_usage_in(reply),
        raw=data,
        raw_wire=WIRE,
    )


def _decode_reply(data: bytes) -> _Reply:
    try:
        reply = _reply_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not an Ollama chat reply: {exc}") from None
    if reply.error is not None:
        raise ErrorReply(f"failed: {error_message(data)}")
    return reply


def _tool_calls_in(calls: list[_ToolCall] | None) -> list[ToolCall]:
    return [
        ToolCall(id=c.id or new_id("call_"), name=c.function.name, arguments=arguments_text(c.function.arguments))
        for c in calls or ()
    ]


def arguments_text(arguments: dict[str, Any] | str | None) -> str:
    """Tool call arguments as the canonical JSON text; Ollama sends an object."""
    if arguments is None:
        return "{}"
    if isinstance(arguments, str):
        return arguments
    return _encode(arguments).decode()


def _finish_reason(done_reason: str | None, tool_calls: bool) -> FinishReason:
    # Ollama says "stop" after tool calls; a cut-off answer stays "length" either way.
    if done_reason == "length":
        return "length"
    return "tool_calls" if tool_calls else "stop"


def _usage_in(reply: _Reply) -> Usage:
    prompt = reply.prompt_eval_count or 0
    completion = reply.eval_count or 0
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


class StreamDecoder:
    """Turns one /api/chat stream's NDJSON lines into canonical chunks.

    Content lines become deltas (the first also carries the role); tool calls arrive whole
    and get consecutive indexes; the `done` line becomes a finish chunk and a usage chunk.

    >>> line = b'{"message": {"role": "assistant", "content": "Hi"}, "done": false}'
    >>> [c.choices[0].delta.content for c in StreamDecoder().feed(line)]
    ['Hi']
    """

    __slots__ = ("_created", "_model", "_started", "_tool_calls", "done", "id")

    def __init__(self, id: str | None = None) -> None:
        self.id = id or new_id("chatcmpl-")
        self.done = False
        self._model = ""
        self._created = 0
        self._started = False
        self._tool_calls = 0

    def feed(self, line: bytes) -> list[ChatChunk]:
        reply = _decode_reply(line)
        if not self._started:
            self._model, self._created = reply.model, _timestamp(reply.created_at)
        message = reply.message or _Message()
        calls = _tool_calls_in(message.tool_calls)
        chunks: list[ChatChunk] = []
        if message.content or message.thinking or calls or not (self._started or reply.done):
            deltas = [
                ToolCallDelta(index=self._tool_calls + i, id=c.id, name=c.name, arguments=c.arguments)
                for i, c in enumerate(calls)
            ]
            self._tool_calls += len(calls)
            delta = Delta(
                role=self._role(),
                content=message.content or None,
                reasoning=message.thinking or None,
                tool_calls=deltas or None,
            )
            chunks.append(self._chunk([ChunkChoice(delta=delta, logprobs=_logprobs(reply))]))
        if reply.done:
            self.done = True
            finish = _finish_reason(reply.done_reason, self._tool_calls > 0)
            chunks.append(self._chunk([ChunkChoice(delta=Delta(role=self._role()), finish_reason=finish)]))
            chunks.append(self._chunk([], usage=_usage_in(reply)))
        return chunks

    def _role(self) -> Literal["assistant"] | None:
        """The role goes on the stream's first delta only, as in OpenAI's streams."""
        first, self._started = not self._started, True
        return "assistant" if first else None

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> ChatChunk:
        return ChatChunk(id=self.id, model=self._model, created=self._created, choices=choices, usage=usage)


def _logprobs(reply: _Reply) -> Any:
    # Ollama's entries ({token, logprob, bytes, top_logprobs}) are OpenAI's `logprobs.content` items.
    return {"content": reply.logprobs} if reply.logprobs else None


# -- upstream direction: model management --


# -- embeddings --


class _Embed(msgspec.Struct):
    embeddings: list[list[float]]
    model: str = ""
    prompt_eval_count: int = 0


def encode_embed_request(request: EmbeddingRequest, model: str, inputs: list[str] | list[list[int]]) -> bytes:
    """An /api/embed body; Ollama embeds text, so token arrays are refused before sending."""
    if inputs and not isinstance(inputs[0], str):
        raise InvalidRequest("Ollama embeds text: send strings, not token arrays.", param="input")
    body: dict[str, Any] = {"model": model, "input": inputs}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    for key in ("truncate", "keep_alive", "options"):
        if key in request.extra:
            body[key] = request.extra[key]
    return _encode(body)


def decode_embed_response(data: bytes) -> EmbeddingResponse:
    try:
        reply = msgspec.json.decode(data, type=_Embed)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not an /api/embed reply: {exc}") from None
    usage = Usage(prompt_tokens=reply.prompt_eval_count, total_tokens=reply.prompt_eval_count)
    return EmbeddingResponse(model=reply.model, vectors=reply.embeddings, usage=usage)


def decode_progress(line: bytes) -> Progress:
    """One line of a /api/pull stream; an error line raises ErrorReply."""
    try:
        progress = _progress_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a pull progress line: {exc}") from None
    if progress.error is not None:
        raise ErrorReply(f"failed: {error_message(line)}")
    return Progress(status=progress.status, digest=progress.digest, total=progress.total, completed=progress.completed)


def decode_model_list(data: bytes, provider: str | None = None) -> list[ModelInfo]:
    """/api/tags: the models an Ollama server holds, with their details."""
    try:
        tags = msgspec.json.decode(data, type=_Tags)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not an /api/tags listing: {exc}") from None
    return [_model_info(m, provider) for m in tags.models]


def _model_info(m: _TagModel, provider: str | None) -> ModelInfo:
    details = m.details or _Details()
    return ModelInfo(
        id=m.model or m.name,
        provider=provider,
        context_length=m.context_length,
        size=details.parameter_size or None,
        family=details.family or None,
        quantization=details.quantization_level or None,
        size_bytes=m.size,
        owned_by=provider,
    )


def context_length(show: bytes) -> int | None:
    """The context window in an /api/show reply's `model_info` (`<architecture>.context_length`)."""
    try:
        body = msgspec.json.decode(show)
    except msgspec.DecodeError:
        return None
    info = body.get("model_info") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        return None
    arch = info.get("general.architecture")
    value = info.get(f"{arch}.context_length")
    if value is None:
        value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# -- helpers --


def new_id(prefix: str) -> str:
    """An id for what Ollama does not number: completions and tool calls."""
    return prefix + uuid.uuid4().hex[:24]


def _timestamp(created_at: str) -> int:
    try:
        return int(datetime.fromisoformat(created_at).timestamp())
    except ValueError:
        return int(time.time())
