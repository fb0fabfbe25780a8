"""OpenAI chat completions: wire types and translation to and from the canonical types.

Pure translation, no I/O. The same functions serve clients that speak OpenAI's format and
upstreams that do. When both ends speak it, the client's body and the upstream's bytes
travel unchanged except for the fields llmmux must rewrite (`model`, gateway-only fields).
"""

from __future__ import annotations

import array
import base64
import re
import sys
from typing import Any

import msgspec

from ..errors import InvalidRequest, LLMMuxError
from ..tags import taken
from ..types import (
    SAMPLING_FIELDS,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    EmbeddingRequest,
    EmbeddingResponse,
    ImagePart,
    Message,
    OtherPart,
    Part,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from . import ErrorReply, MalformedReply
from .passthrough import Sources, body_for, kept_items

WIRE = "openai"
RESPONSES_WIRE = "openai_responses"
"""A request from the Responses door: its `extra` holds only chat-completions fields it mapped."""
GATEWAY_FIELDS = ("provider", "provider_hint", "capability")

MAX_USER = 64
"""The longest `user` OpenAI accepts; another API's longer end-user id (Claude Code's
`metadata.user_id` is a JSON object of about 170 characters) is left out, not refused."""

PORTABLE_EXTRA = ("reasoning_effort", "parallel_tool_calls")
"""Keys of `ChatRequest.extra` that other doors set with OpenAI's meaning (Anthropic's effort and
`disable_parallel_tool_use`, the Responses API's `reasoning.effort`)."""
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

_encode = msgspec.json.encode


# -- wire types: only the fields llmmux reads; everything else rides along in `extra` and the passthrough --


class _Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    function: _Function
    id: str = ""
    type: str = "function"


class _InMessage(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class _ToolFunction(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class _Tool(msgspec.Struct):
    function: _ToolFunction
    type: str = "function"


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _Request(msgspec.Struct):
    model: str
    messages: list[_InMessage]
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[_Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    provider: str | None = None
    provider_hint: str | None = None
    capability: str | None = None


_MODELLED = frozenset(_Request.__struct_fields__)


class _Details(msgspec.Struct):
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


class WireUsage(msgspec.Struct):
    """OpenAI's `usage` object, shared by chat, legacy completions and embeddings."""

    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    total_tokens: int | None = 0
    prompt_tokens_details: _Details | None = None
    completion_tokens_details: _Details | None = None


class _OutMessage(msgspec.Struct):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class _Choice(msgspec.Struct):
    message: _OutMessage
    index: int = 0
    finish_reason: str | None = None
    logprobs: Any = None


class _Response(msgspec.Struct):
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[_Choice] = []
    usage: WireUsage | None = None
    system_fingerprint: str | None = None
    error: Any = None


class _DeltaFunction(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _DeltaToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _DeltaFunction | None = None


class _Delta(msgspec.Struct):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_DeltaToolCall] | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    index: int = 0
    finish_reason: str | None = None
    logprobs: Any = None


class _Chunk(msgspec.Struct):
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[_ChunkChoice] = []
    usage: WireUsage | None = None
    error: Any = None


_response_decoder = msgspec.json.Decoder(_Response)
_chunk_decoder = msgspec.json.Decoder(_Chunk)


# -- requests --


def decode_chat_request(body: Any) -> ChatRequest:
    """Validate a client's chat request and return it in canonical form."""
    body, tags = taken(body)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        wire = msgspec.convert(body, _Request)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(validation_message(exc), param=validation_param(exc)) from None
    if not wire.messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    messages = [_message_in(m, i) for i, m in enumerate(wire.messages)]
    return ChatRequest(
        model=wire.model,
        messages=messages,
        stream=bool(wire.stream),
        include_usage=bool(wire.stream_options and wire.stream_options.include_usage),
        temperature=wire.temperature,
        top_p=wire.top_p,
        top_k=wire.top_k,
        max_tokens=wire.max_completion_tokens if wire.max_completion_tokens is not None else wire.max_tokens,
        stop=[wire.stop] if isinstance(wire.stop, str) else wire.stop,
        n=wire.n,
        seed=wire.seed,
        presence_penalty=wire.presence_penalty,
        frequency_penalty=wire.frequency_penalty,
        tools=[_tool_in(t) for t in wire.tools] if wire.tools else None,
        tool_choice=wire.tool_choice,
        response_format=wire.response_format,
        user=wire.user,
        extra={k: v for k, v in body.items() if k not in _MODELLED},
        provider=wire.provider,
        provider_hint=wire.provider_hint,
        capability=wire.capability,
        tags=tags,
        client_wire=WIRE,
    ).passing_through(body)


def _message_in(m: _InMessage, index: int) -> Message:
    if m.role not in ROLES:
        raise InvalidRequest(
            f"Invalid role {m.role!r} in messages[{index}]; expected one of {', '.join(sorted(ROLES))}.",
            param=f"messages[{index}].role",
        )
    content: str | list[Part] | None
    if isinstance(m.content, list):
        content = [_part_in(p, index, j) for j, p in enumerate(m.content)]
    else:
        content = m.content
    return Message(
        role="tool" if m.role == "function" else m.role,  # type: ignore[arg-type]
        content=content,
        name=m.name,
        tool_calls=[ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments) for c in m.tool_calls]
        if m.tool_calls
        else None,
        tool_call_id=m.tool_call_id,
        reasoning=m.reasoning_content,
    )


def _part_in(part: dict[str, Any], index: int, j: int) -> Part:
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequest("A text part needs a string 'text'.", param=f"messages[{index}].content[{j}].text")
        return TextPart(text)
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str):
            raise InvalidRequest(
                "An image part needs 'image_url.url'.", param=f"messages[{index}].content[{j}].image_url"
            )
        return ImagePart(url=url, detail=image.get("detail") if isinstance(image, dict) else None)
    if not isinstance(kind, str):
        raise InvalidRequest("Each content part needs a 'type'.", param=f"messages[{index}].content[{j}].type")
    return OtherPart(part)


def _tool_in(tool: _Tool) -> Tool:
    f = tool.function
    return Tool(name=f.name, description=f.description, parameters=f.parameters, strict=f.strict)


def encode_chat_request(
    request: ChatRequest, model: str, *, stream: bool, stream_usage: bool = True, cache_marks: bool = False
) -> bytes:
    """The body for an OpenAI-format upstream, asking for `model`.

    With `cache_marks` (servers that take Anthropic-style breakpoints in OpenAI's format, such
    as OpenRouter), the messages an Anthropic client marked with `cache_control` keep the mark
    on their last text part.
    """
    if request.passthrough is not None and request.client_wire == WIRE:
        body = body_for(request, SOURCES, lambda: _passthrough_out(request))
        for key in GATEWAY_FIELDS:
            body.pop(key, None)
    else:
        body = _request_out(request)
        if cache_marks:
            for index in request.cached_messages:
                body["messages"][index] = _cache_marked(body["messages"][index])
    body["model"] = model
    if stream:
        body["stream"] = True
        if stream_usage:
            # Always ask for usage so every stream is accounted for; the client only sees
            # the usage chunk if it asked for one.
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
    elif body.get("stream"):
        body["stream"] = False
        body.pop("stream_options", None)
    return _encode(body)


def _request_out(request: ChatRequest) -> dict[str, Any]:
    # Unmodelled fields of another API (Ollama's keep_alive, Anthropic's thinking) would be
    # unknown here; a request built in Python (client_wire None) means its extras for us. The
    # few that other doors set in OpenAI's own terms travel from any of them.
    if request.client_wire in (None, WIRE, RESPONSES_WIRE):
        body: dict[str, Any] = dict(request.extra)
    else:
        body = {k: request.extra[k] for k in PORTABLE_EXTRA if k in request.extra}
    body["messages"] = [_message_out(m) for m in request.messages]
    for key in (*SAMPLING_FIELDS, "tool_choice", "response_format", "user"):
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    if len(body.get("user") or "") > MAX_USER:
        del body["user"]
    if request.tools:
        body["tools"] = [_tool_out(t) for t in request.tools]
    return body


def _passthrough_out(request: ChatRequest) -> dict[str, Any]:
    """`_request_out` for a body that passes through: the client's tools still offered stay as sent."""
    body = _request_out(request)
    sent = request.passthrough.body.get("tools") if request.passthrough is not None else None
    tools = kept_items(sent, {t.name: t for t in request.tools or ()}, _function_name, _tool_out)
    if tools:
        body["tools"] = tools
    return body


def _function_name(tool: Any) -> str | None:
    function = tool.get("function") if isinstance(tool, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


SOURCES: Sources = {
    **{key: () for key in ("model", "stream", "stream_options", *GATEWAY_FIELDS)},
    **{key: (key,) for key in ("messages", "stop", "tool_choice", "response_format", "user", "n", "seed")},
    **{key: (key,) for key in ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty")},
    "max_tokens": ("max_tokens",),
    "max_completion_tokens": ("max_tokens",),
    "tools": ("tools", "hosted_tools"),
}
"""What each key of a chat body is made from, for a body that passes through (`wire.passthrough`)."""

EPHEMERAL = {"type": "ephemeral"}


def _cache_marked(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, str) and content:
        return {**message, "content": [{"type": "text", "text": content, "cache_control": EPHEMERAL}]}
    if isinstance(content, list):
        texts = [i for i, part in enumerate(content) if part.get("type") == "text"]
        if texts:
            parts = list(content)
            parts[texts[-1]] = {**parts[texts[-1]], "cache_control": EPHEMERAL}
            return {**message, "content": parts}
    return message


def _message_out(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if isinstance(m.content, list):
        out["content"] = [_part_out(p) for p in m.content]
    else:
        out["content"] = m.content
    if m.name is not None:
        out["name"] = m.name
    if m.tool_calls:
        out["tool_calls"] = [_tool_call_out(c) for c in m.tool_calls]
    if m.tool_call_id is not None:
        out["tool_call_id"] = m.tool_call_id
    return out


def _part_out(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        image: dict[str, Any] = {"url": part.url}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    return part.data


def _tool_out(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_call_out(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


# -- responses --


def decode_chat_response(data: bytes) -> ChatResponse:
    try:
        wire = _response_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a chat completion: {exc}") from None
    if wire.error is not None and not wire.choices:
        raise MalformedReply(f"error in a 200 reply: {error_message(data)}")
    if not wire.choices:
        raise MalformedReply("chat completion without choices")
    choices = [
        Choice(
            index=c.index,
            message=Message(
                role="assistant",
                content=c.message.content,
                tool_calls=[
                    ToolCall(id=t.id, name=t.function.name, arguments=t.function.arguments)
                    for t in c.message.tool_calls
                ]
                if c.message.tool_calls
                else None,
                reasoning=c.message.reasoning_content or c.message.reasoning,
            ),
            finish_reason=c.finish_reason,  # type: ignore[arg-type]
            logprobs=c.logprobs,
        )
        for c in wire.choices
    ]
    return ChatResponse(
        id=wire.id,
        model=wire.model,
        created=wire.created,
        choices=choices,
        usage=usage_in(wire.usage),
        system_fingerprint=wire.system_fingerprint,
        raw=data,
        raw_wire=WIRE,
    )


def usage_in(usage: WireUsage | None) -> Usage | None:
    if usage is None:
        return None
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=usage.total_tokens or prompt + completion,
        cached_tokens=(usage.prompt_tokens_details.cached_tokens or 0) if usage.prompt_tokens_details else 0,
        reasoning_tokens=(usage.completion_tokens_details.reasoning_tokens or 0)
        if usage.completion_tokens_details
        else 0,
    )


def encode_chat_response(response: ChatResponse, public_model: str) -> bytes:
    if response.raw is not None and response.raw_wire == WIRE:
        return rename_model(response.raw, response.model, public_model)
    body = {
        "id": response.id,
        "object": "chat.completion",
        "created": response.created,
        "model": public_model,
        "choices": [
            {
                "index": c.index,
                "message": _assistant_out(c.message),
                "logprobs": c.logprobs,
                "finish_reason": c.finish_reason,
            }
            for c in response.choices
        ],
    }
    if response.usage is not None:
        body["usage"] = usage_out(response.usage)
    if response.system_fingerprint:
        body["system_fingerprint"] = response.system_fingerprint
    return _encode(body)


def _assistant_out(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": m.text() if m.content is not None else None, "refusal": None}
    if m.tool_calls:
        out["tool_calls"] = [_tool_call_out(c) for c in m.tool_calls]
    if m.reasoning:
        out["reasoning_content"] = m.reasoning
    return out


def usage_out(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


# -- stream chunks --


def decode_chunk(data: bytes) -> ChatChunk:
    try:
        wire = _chunk_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a chat completion chunk: {exc}") from None
    if wire.error is not None:
        # No body: an error event is the upstream failing mid-reply, retried elsewhere
        # whatever it says (a context-length message included).
        raise ErrorReply(f"sent an error event: {error_message(data)}")
    return ChatChunk(
        id=wire.id,
        model=wire.model,
        created=wire.created,
        choices=[_chunk_choice_in(c) for c in wire.choices],
        usage=usage_in(wire.usage),
        raw=data,
        raw_wire=WIRE,
    )


def _chunk_choice_in(c: _ChunkChoice) -> ChunkChoice:
    d = c.delta
    return ChunkChoice(
        index=c.index,
        delta=Delta(
            role=d.role,  # type: ignore[arg-type]
            content=d.content,
            reasoning=d.reasoning_content or d.reasoning,
            tool_calls=[
                ToolCallDelta(
                    index=t.index,
                    id=t.id,
                    name=t.function.name if t.function else None,
                    arguments=t.function.arguments if t.function else None,
                )
                for t in d.tool_calls
            ]
            if d.tool_calls
            else None,
        ),
        finish_reason=c.finish_reason,  # type: ignore[arg-type]
        logprobs=c.logprobs,
    )


def encode_chunk(chunk: ChatChunk, public_model: str) -> bytes:
    if chunk.raw is not None and chunk.raw_wire == WIRE:
        return rename_model(chunk.raw, chunk.model, public_model)
    body: dict[str, Any] = {
        "id": chunk.id,
        "object": "chat.completion.chunk",
        "created": chunk.created,
        "model": public_model,
        "choices": [_chunk_choice_out(c) for c in chunk.choices],
    }
    if chunk.usage is not None:
        body["usage"] = usage_out(chunk.usage)
    return _encode(body)


def _chunk_choice_out(c: ChunkChoice) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    d = c.delta
    if d.role is not None:
        delta["role"] = d.role
    if d.content is not None:
        delta["content"] = d.content
    if d.reasoning is not None:
        delta["reasoning_content"] = d.reasoning
    if d.tool_calls:
        delta["tool_calls"] = [_tool_call_delta_out(t) for t in d.tool_calls]
    return {"index": c.index, "delta": delta, "logprobs": c.logprobs, "finish_reason": c.finish_reason}


def _tool_call_delta_out(t: ToolCallDelta) -> dict[str, Any]:
    out: dict[str, Any] = {"index": t.index}
    if t.id is not None:
        out["id"] = t.id
        out["type"] = "function"
    function: dict[str, Any] = {}
    if t.name is not None:
        function["name"] = t.name
    if t.arguments is not None:
        function["arguments"] = t.arguments
    if function:
        out["function"] = function
    return out


_MAX_NAMES = 1024
_names: dict[str, bytes] = {}


def _encoded_name(name: str) -> bytes:
    """A model name as a JSON string: encoded once, not for every event of every stream."""
    encoded = _names.get(name)
    if encoded is None:
        encoded = _encode(name)
        if len(_names) < _MAX_NAMES:  # names a client chose: the cache stays bounded
            _names[name] = encoded
    return encoded


def rename_model(raw: bytes, current: str, public: str) -> bytes:
    """Show the client the public model name, touching nothing else in the bytes.

    A JSON string value cannot contain an unescaped `"model":"x"`, so the first match of
    that exact sequence is the object's own field.
    """
    if current == public:
        return raw
    old, new = _encoded_name(current), _encoded_name(public)
    for separator in (b'"model":', b'"model": '):
        needle = separator + old
        at = raw.find(needle)
        if at >= 0:
            return raw[:at] + separator + new + raw[at + len(needle) :]
    body = msgspec.json.decode(raw)
    if isinstance(body, dict) and "model" in body:
        body["model"] = public
        return _encode(body)
    return raw


# -- embeddings --


class _EmbeddingRequest(msgspec.Struct):
    model: str
    input: str | list[Any]
    dimensions: int | None = None
    encoding_format: str | None = None
    user: str | None = None
    provider: str | None = None


class _Embedding(msgspec.Struct):
    embedding: list[float] | str
    index: int = 0


class _EmbeddingResponse(msgspec.Struct):
    data: list[_Embedding]
    model: str = ""
    usage: WireUsage | None = None


_EMBEDDING_FIELDS = frozenset(_EmbeddingRequest.__struct_fields__)
_embedding_decoder = msgspec.json.Decoder(_EmbeddingResponse)


def decode_embedding_request(body: Any) -> EmbeddingRequest:
    body, tags = taken(body)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        wire = msgspec.convert(body, _EmbeddingRequest)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(validation_message(exc), param=validation_param(exc)) from None
    inputs = _embedding_inputs(wire.input)
    if wire.encoding_format not in (None, "float", "base64"):
        raise InvalidRequest("'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
    return EmbeddingRequest(
        model=wire.model,
        inputs=inputs,
        dimensions=wire.dimensions,
        encoding_format=wire.encoding_format,
        user=wire.user,
        extra={k: v for k, v in body.items() if k not in _EMBEDDING_FIELDS},
        provider=wire.provider,
        tags=tags,
        client_wire=WIRE,
    )


def _embedding_inputs(value: str | list[Any]) -> list[str] | list[list[int]]:
    """One text, texts, one token array or token arrays; anything else is a 400 naming `input`."""
    problem = InvalidRequest("'input' must be a non-empty string, list of strings or token arrays.", param="input")
    if isinstance(value, str):
        value = [value]
    if not value:
        raise problem
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    if all(isinstance(v, str) and v for v in value):
        return value
    if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
        return value
    raise problem


def encode_embedding_request(
    request: EmbeddingRequest, model: str, inputs: list[str] | list[list[int]] | None = None
) -> bytes:
    body: dict[str, Any] = dict(request.extra) if request.client_wire in (None, WIRE) else {}
    body["model"] = model
    body["input"] = request.inputs if inputs is None else inputs
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    # Floats upstream: llmmux re-encodes for the client, whatever format it asked for.
    body["encoding_format"] = "float"
    return _encode(body)


def decode_embedding_response(data: bytes) -> EmbeddingResponse:
    try:
        wire = _embedding_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not an embeddings reply: {exc}") from None
    ordered = sorted(wire.data, key=lambda e: e.index)
    vectors = [e.embedding if isinstance(e.embedding, list) else _from_base64(e.embedding) for e in ordered]
    return EmbeddingResponse(model=wire.model, vectors=vectors, usage=usage_in(wire.usage))


def encode_embedding_response(response: EmbeddingResponse, public_model: str, encoding_format: str | None) -> bytes:
    as_base64 = encoding_format == "base64"
    usage = response.usage or Usage()
    body = {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _to_base64(v) if as_base64 else v}
            for i, v in enumerate(response.vectors)
        ],
        "model": public_model,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens or usage.prompt_tokens},
    }
    return _encode(body)


def _to_base64(vector: list[float]) -> str:
    values = array.array("f", vector)
    if sys.byteorder == "big":
        values.byteswap()  # OpenAI's base64 embeddings are little-endian float32
    return base64.b64encode(values.tobytes()).decode("ascii")


def _from_base64(text: str) -> list[float]:
    values = array.array("f")
    values.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


# -- errors --


def encode_error(error: LLMMuxError) -> bytes:
    return _encode({"error": {"message": error.message, "type": error.type, "param": error.param, "code": error.code}})


def error_message(data: bytes) -> str:
    """The human message inside an upstream's error body, whatever its exact shape."""
    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError:
        text = data.decode("utf-8", "replace").strip()
        return text[:300] or "empty body"
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            for key in ("message", "detail", "error"):
                if isinstance(err.get(key), str):
                    return str(err[key])
        if isinstance(err, str):
            return err
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
    return data.decode("utf-8", "replace")[:300]


_AT = re.compile(r"at `\$\.?([^`]*)`")
_MISSING = re.compile(r"missing required field `([^`]*)`")


def validation_param(exc: msgspec.ValidationError) -> str | None:
    text = str(exc)
    at = _AT.search(text)
    path = at.group(1) if at else ""
    missing = _MISSING.search(text)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def validation_message(exc: msgspec.ValidationError) -> str:
    text = _AT.sub("", str(exc)).rstrip(" -")
    param = validation_param(exc)
    if _MISSING.search(str(exc)):
        return f"Missing required parameter: '{param}'."
    return f"Invalid value for '{param}': {text}." if param else f"Invalid request: {text}."
