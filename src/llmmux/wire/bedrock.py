"""AWS Bedrock's Converse API: wire types and translation to and from the canonical types.

Pure translation, no I/O. What differs from OpenAI's format, and how it is bridged:

* roles alternate strictly between `user` and `assistant`, so consecutive turns of one
  role (tool results, then a user message) merge into one; system prompts are `system`
  blocks; tool results are `toolResult` blocks in a user turn;
* content is a list of blocks: `text`, `image` (bytes only: `data:` URLs, or `s3://`
  locations), `document`, `toolUse` (input is a JSON object), `reasoningContent`;
* sampling settings are `inferenceConfig` (`maxTokens`, `temperature`, `topP`,
  `stopSequences`); anything model-specific travels in `additionalModelRequestFields`,
  which a client may send through `extra`;
* ConverseStream answers with AWS event stream frames (see `wire.eventstream`) whose
  `:event-type` names the event and whose payload is its JSON; failures mid-stream are
  frames with `:message-type: exception`.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import msgspec

from ..errors import (
    ContextLengthExceeded,
    InvalidRequest,
    UpstreamError,
    UpstreamServerError,
    classify_status,
)
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    ImagePart,
    Message,
    Part,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from . import ErrorReply, MalformedReply
from .eventstream import Message as Frame
from .turns import late_system_as_user

WIRE = "bedrock"

CACHE_POINT = {"cachePoint": {"type": "default"}}
"""A prompt-cache breakpoint, as Converse takes it in system, message content and tools; where an
Anthropic client marked `cache_control` (`ChatRequest.cached_messages`, `cached_tools`)."""
CONTENT_TYPE = "application/vnd.amazon.eventstream"
# Request fields with no canonical form, passed through from `extra` under Bedrock's own names.
PASSTHROUGH = (
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
    "serviceTier",
)

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "error",
    "malformed_tool_use": "error",
}
# Exceptions a stream can carry, with the HTTP status the same exception has as a reply.
EXCEPTION_STATUS = {
    "internalServerException": 500,
    "modelStreamErrorException": 424,
    "validationException": 400,
    "throttlingException": 429,
    "serviceUnavailableException": 503,
}
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/html": "html",
    "text/markdown": "md",
    "application/msword": "doc",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}
_DATA_URL = re.compile(r"data:([^;,]+)?(?:;[^,]*)?;base64,(.*)", re.DOTALL)

_encode = msgspec.json.encode


class BedrockStreamError(ErrorReply):
    """An exception or error frame inside a ConverseStream reply."""

    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(f"sent {kind}: {message}", status=status, body=_encode({"message": message}))
        self.kind = kind
        self.message = message


# -- requests: canonical -> Converse --


def encode_request(request: ChatRequest) -> bytes:
    """The Converse (or ConverseStream) body; the model goes in the URL."""
    messages = late_system_as_user(request.messages)
    cached = frozenset(request.cached_messages)
    system = _system_out(messages, cached)
    body: dict[str, Any] = {"messages": _messages_out(messages, cached)}
    if system:
        body["system"] = system
    inference = {
        key: value
        for key, value in (
            ("maxTokens", request.max_tokens),
            ("temperature", request.temperature),
            ("topP", request.top_p),
            ("stopSequences", request.stop),
        )
        if value is not None
    }
    if inference:
        body["inferenceConfig"] = inference
    tool_config = _tool_config(request, body["messages"])
    if tool_config:
        body["toolConfig"] = tool_config
    output = _output_config(request.response_format)
    if output:
        body["outputConfig"] = output
    for key in PASSTHROUGH:
        if key in request.extra:
            body[key] = request.extra[key]
    return _encode(body)


def _system_out(messages: list[Message], cached: frozenset[int]) -> list[dict[str, Any]]:
    system: list[dict[str, Any]] = []
    for index, m in enumerate(messages):
        if m.role in ("system", "developer") and m.text():
            system.append({"text": m.text()})
            if index in cached:
                system.append(CACHE_POINT)
    return system


def _messages_out(messages: list[Message], cached: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, m in enumerate(messages):
        if m.role in ("system", "developer"):
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks = _blocks(m, index)
        if index in cached and blocks:
            blocks.append(CACHE_POINT)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        elif blocks:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(m: Message, index: int) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [_tool_result(m)]
    blocks: list[dict[str, Any]] = []
    if isinstance(m.content, str):
        if m.content:
            blocks.append({"text": m.content})
    elif m.content:
        blocks.extend(_part_out(p, index, j) for j, p in enumerate(m.content))
    for call in m.tool_calls or ():
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.name, "input": _arguments(call, index)}})
    return blocks


def _arguments(call: ToolCall, index: int) -> Any:
    try:
        return json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        raise InvalidRequest(
            f"The arguments of tool call '{call.id}' are not JSON.", param=f"messages[{index}].tool_calls"
        ) from None


def _tool_result(m: Message) -> dict[str, Any]:
    text = m.text()
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    content = [{"json": value}] if isinstance(value, dict) else [{"text": text}]
    return {"toolResult": {"toolUseId": m.tool_call_id or "", "content": content, "status": "success"}}


def _part_out(part: Part, index: int, j: int) -> dict[str, Any]:
    where = f"messages[{index}].content[{j}]"
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ImagePart):
        return {"image": _image(part.url, where)}
    if part.data.get("type") == "file" and isinstance(part.data.get("file"), dict):
        return {"document": _document(part.data["file"], j, where)}
    raise InvalidRequest(f"Content parts of type {part.data.get('type')!r} cannot be sent to Bedrock.", param=where)


def _image(url: str, where: str) -> dict[str, Any]:
    if url.startswith("s3://"):
        extension = url.rsplit(".", 1)[-1].lower()
        return {"format": "jpeg" if extension == "jpg" else extension, "source": {"s3Location": {"uri": url}}}
    match = _DATA_URL.match(url)
    image_format = _IMAGE_FORMATS.get((match.group(1) or "").lower()) if match else None
    if match is None or image_format is None:
        raise InvalidRequest(
            "Bedrock takes images as base64 data: URLs (png, jpeg, gif, webp) or s3:// locations, "
            "not links it would have to fetch.",
            param=where,
        )
    return {"format": image_format, "source": {"bytes": match.group(2)}}


def _document(file: dict[str, Any], j: int, where: str) -> dict[str, Any]:
    match = _DATA_URL.match(str(file.get("file_data", "")))
    doc_format = _DOCUMENT_FORMATS.get((match.group(1) or "").lower()) if match else None
    if match is None or doc_format is None:
        raise InvalidRequest(
            "Bedrock takes documents as base64 data: URLs of pdf, csv, doc(x), xls(x), html, txt or md.", param=where
        )
    # Bedrock allows letters, digits, single spaces, hyphens, parentheses and brackets in names.
    name = re.sub(r"[^A-Za-z0-9\-()\[\] ]+", " ", str(file.get("filename") or f"document {j}").rsplit(".", 1)[0])
    return {
        "format": doc_format,
        "name": re.sub(r" +", " ", name).strip() or f"document {j}",
        "source": {"bytes": match.group(2)},
    }


def _tool_config(request: ChatRequest, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not request.tools:
        return None
    uses_tools = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
    if request.tool_choice == "none" and not uses_tools:
        return None  # Converse has no "none"; without tools the model cannot call one
    tools = []
    for index, tool in enumerate(request.tools):
        spec: dict[str, Any] = {"name": tool.name, "inputSchema": {"json": tool.parameters or {"type": "object"}}}
        if tool.description:
            spec["description"] = tool.description
        if tool.strict is not None:
            spec["strict"] = tool.strict
        tools.append({"toolSpec": spec})
        if index in request.cached_tools:
            tools.append(CACHE_POINT)
    config: dict[str, Any] = {"tools": tools}
    choice = request.tool_choice
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        config["toolChoice"] = {"tool": {"name": choice["function"]["name"]}}
    elif choice in ("auto", "required"):
        config["toolChoice"] = {"auto": {}} if choice == "auto" else {"any": {}}
    return config


def _output_config(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    schema = (fmt or {}).get("json_schema") if (fmt or {}).get("type") == "json_schema" else None
    if not isinstance(schema, dict) or "schema" not in schema:
        return None
    definition = {"schema": json.dumps(schema["schema"]), "name": schema.get("name") or "response"}
    if schema.get("description"):
        definition["description"] = schema["description"]
    return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": definition}}}


# -- replies: Converse -> canonical --


class _Usage(msgspec.Struct, rename="camel"):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class _ToolUse(msgspec.Struct, rename="camel"):
    tool_use_id: str = ""
    name: str = ""
    input: Any = None


class _ReasoningText(msgspec.Struct):
    text: str = ""


class _Reasoning(msgspec.Struct, rename="camel"):
    reasoning_text: _ReasoningText | None = None


class _Block(msgspec.Struct, rename="camel"):
    text: str | None = None
    tool_use: _ToolUse | None = None
    reasoning_content: _Reasoning | None = None


class _Message(msgspec.Struct):
    content: list[_Block] = []
    role: str = "assistant"


class _Output(msgspec.Struct):
    message: _Message | None = None


class _Response(msgspec.Struct, rename="camel"):
    output: _Output
    stop_reason: str = "end_turn"
    usage: _Usage | None = None


_response_decoder = msgspec.json.Decoder(_Response)


def decode_response(
    data: bytes, model: str, *, request_id: str | None = None, created: int | None = None
) -> ChatResponse:
    """A Converse reply as a canonical response (Converse replies carry no id; AWS's request id is used)."""
    try:
        wire = _response_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a Converse reply: {exc}") from None
    texts, thoughts, calls = [], [], []
    for block in wire.output.message.content if wire.output.message else ():
        if block.text is not None:
            texts.append(block.text)
        elif block.tool_use is not None:
            calls.append(
                ToolCall(
                    id=block.tool_use.tool_use_id,
                    name=block.tool_use.name,
                    arguments=_encode(block.tool_use.input if block.tool_use.input is not None else {}).decode(),
                )
            )
        elif block.reasoning_content is not None and block.reasoning_content.reasoning_text is not None:
            thoughts.append(block.reasoning_content.reasoning_text.text)
    message = Message(
        role="assistant",
        content="".join(texts) if texts else None,
        reasoning="".join(thoughts) if thoughts else None,
        tool_calls=calls or None,
    )
    return ChatResponse(
        id=request_id or f"bedrock-{uuid.uuid4().hex}",
        model=model,
        created=created if created is not None else int(time.time()),
        choices=[Choice(index=0, message=message, finish_reason=stop_reason_in(wire.stop_reason))],
        usage=usage_in(wire.usage),
    )


def stop_reason_in(reason: str | None) -> FinishReason | None:
    return None if reason is None else STOP_REASONS.get(reason, "stop")


def usage_in(usage: _Usage | None) -> Usage | None:
    """Bedrock counts cache reads and writes apart from `inputTokens`; OpenAI's prompt tokens include them."""
    if usage is None:
        return None
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_write_input_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens or prompt + usage.output_tokens,
        cached_tokens=usage.cache_read_input_tokens,
        cache_write_tokens=usage.cache_write_input_tokens,
    )


# -- streams: ConverseStream frames -> canonical chunks --


class _Start(msgspec.Struct, rename="camel"):
    tool_use: _ToolUse | None = None


class _DeltaToolUse(msgspec.Struct):
    input: str = ""


class _DeltaReasoning(msgspec.Struct):
    text: str | None = None


class _BlockDelta(msgspec.Struct, rename="camel"):
    text: str | None = None
    tool_use: _DeltaToolUse | None = None
    reasoning_content: _DeltaReasoning | None = None


class _Event(msgspec.Struct, rename="camel"):
    """The payload of any ConverseStream event; each sets only its own fields."""

    role: str | None = None
    content_block_index: int = 0
    start: _Start | None = None
    delta: _BlockDelta | None = None
    stop_reason: str | None = None
    usage: _Usage | None = None


_event_decoder = msgspec.json.Decoder(_Event)


class StreamDecoder:
    """Turns the frames of one ConverseStream reply into canonical chunks."""

    def __init__(self, model: str, *, request_id: str | None = None, created: int | None = None) -> None:
        self.model = model
        self.id = request_id or f"bedrock-{uuid.uuid4().hex}"
        self.created = created if created is not None else int(time.time())
        self.finished = False
        self._tools: dict[int, int] = {}  # content block index -> tool call index

    def feed(self, frame: Frame) -> list[ChatChunk]:
        kind = frame.headers.get(":message-type", "event")
        if kind != "event":
            raise _frame_error(frame)
        name = str(frame.headers.get(":event-type", ""))
        try:
            event = _event_decoder.decode(frame.payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedReply(f"{name} event is not JSON: {exc}") from None
        if name == "metadata":
            usage = usage_in(event.usage)
            return [self._chunk([], usage)] if usage else []
        choice = self._choice(name, event)
        return [self._chunk([choice])] if choice else []

    def _choice(self, name: str, event: _Event) -> ChunkChoice | None:
        if name == "messageStart":
            return ChunkChoice(delta=Delta(role="assistant"))
        if name == "messageStop":
            self.finished = True
            return ChunkChoice(delta=Delta(), finish_reason=stop_reason_in(event.stop_reason or "end_turn"))
        if name == "contentBlockStart" and event.start and event.start.tool_use:
            use = event.start.tool_use
            index = self._tools.setdefault(event.content_block_index, len(self._tools))
            return ChunkChoice(
                delta=Delta(tool_calls=[ToolCallDelta(index=index, id=use.tool_use_id, name=use.name, arguments="")])
            )
        if name == "contentBlockDelta" and event.delta is not None:
            return self._delta(event.content_block_index, event.delta)
        return None  # contentBlockStop, and events this version does not model

    def _delta(self, block: int, delta: _BlockDelta) -> ChunkChoice | None:
        if delta.text is not None:
            return ChunkChoice(delta=Delta(content=delta.text))
        if delta.tool_use is not None and block in self._tools:
            return ChunkChoice(
                delta=Delta(tool_calls=[ToolCallDelta(index=self._tools[block], arguments=delta.tool_use.input)])
            )
        if delta.reasoning_content is not None and delta.reasoning_content.text is not None:
            return ChunkChoice(delta=Delta(reasoning=delta.reasoning_content.text))
        return None  # reasoning signatures and redacted reasoning have no OpenAI form

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> ChatChunk:
        return ChatChunk(id=self.id, model=self.model, created=self.created, choices=choices, usage=usage)


def _frame_error(frame: Frame) -> BedrockStreamError:
    if frame.headers.get(":message-type") == "exception":
        kind = str(frame.headers.get(":exception-type", "internalServerException"))
        try:
            message = str(json.loads(frame.payload).get("message", ""))
        except (ValueError, AttributeError):
            message = frame.payload.decode("utf-8", "replace")[:300]
        return BedrockStreamError(kind, EXCEPTION_STATUS.get(kind, 500), message)
    code = str(frame.headers.get(":error-code", "error"))
    return BedrockStreamError(code, 500, str(frame.headers.get(":error-message", "")))


# -- errors --


_CONTEXT_LENGTH = re.compile(
    r"input is too long|too many input tokens|prompt is too long|exceed(s|ed)? the "
    r"(model's )?(maximum )?context|context window",
    re.IGNORECASE,
)


def error_message(data: bytes) -> str:
    """The `message` of a Bedrock error body (the body's start when it is not one)."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "Message"):
            if isinstance(body.get(key), str):
                return str(body[key])
    text = data.decode("utf-8", "replace").strip()
    return text[:300] or "empty body"


def classify_error(
    status: int, message: str, *, provider: str, retry_after: float | None, body: bytes | None
) -> UpstreamError:
    """`classify_status`, plus Bedrock's own: 424 is the model failing (retry elsewhere), long prompts."""
    kwargs: dict[str, Any] = {"provider": provider, "upstream_status": status, "body": body}
    if status == 424:  # ModelErrorException / ModelStreamErrorException
        return UpstreamServerError(message, retry_after=retry_after, **kwargs)
    if status == 400 and body and _CONTEXT_LENGTH.search(error_message(body)):
        return ContextLengthExceeded(message, **kwargs)
    return classify_status(status, message, provider=provider, retry_after=retry_after, body=body)
