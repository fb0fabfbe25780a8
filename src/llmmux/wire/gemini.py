"""Google Gemini `generateContent` / `streamGenerateContent`: wire types and translation, both ways.

Pure translation, no I/O. What differs from OpenAI's format, and how it is bridged:

* roles are `user` and `model`; system and developer messages become `systemInstruction`,
  tool results are `functionResponse` parts of a `user` turn (named, not matched by id),
  and consecutive turns of one role are merged, as Gemini expects;
* tools are `functionDeclarations` with their JSON Schema as `parametersJsonSchema`, so
  OpenAI schemas (`additionalProperties`, `$ref`, ...) pass unchanged; `json_schema`
  response formats likewise become `responseJsonSchema`;
* Gemini 3 signs function calls (`thoughtSignature`) and refuses a follow-up turn without
  the signature, so it travels inside the tool call id (`<id>__thought__<signature>`),
  which every client echoes back;
* images are `inlineData` (from `data:` URLs) or `fileData` (any other URL);
* a stream is a series of whole `GenerateContentResponse` objects as SSE events
  (`?alt=sse`), with no end marker: a stream that stops before a finish reason was cut;
* safety blocks (`promptFeedback.blockReason`, `finishReason: SAFETY`, ...) become the
  `content_filter` finish reason; `usageMetadata` becomes usage, thoughts counted as
  reasoning tokens inside completion tokens, as OpenAI counts them.
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
    LLMMuxError,
    UpstreamClientError,
    UpstreamError,
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
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from . import ErrorReply, MalformedReply
from .turns import late_system_as_user

WIRE = "gemini"
SIGNATURE_SEPARATOR = "__thought__"
# Request fields with no canonical form that mean the same to Gemini, passed through from `extra`.
PASSTHROUGH = ("safetySettings", "cachedContent", "labels")
# OpenAI's reasoning_effort as a thinking budget in tokens (Google's own OpenAI-compatible mapping).
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}

FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MODEL_ARMOR": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
}
_FINISH_OUT = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
    "function_call": "STOP",
    "error": "OTHER",
}

_encode = msgspec.json.encode


class GeminiError(ErrorReply):
    """An `{"error": {...}}` object where a response was expected (mid-stream, or in a 200)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"sent an error event: {error_message(body)}", status=status, body=body)


# -- wire types: only the fields llmmux reads --


class _Blob(msgspec.Struct, rename="camel"):
    mime_type: str = ""
    data: str = ""


class _FileData(msgspec.Struct, rename="camel"):
    file_uri: str = ""
    mime_type: str | None = None


class _FunctionCall(msgspec.Struct):
    name: str = ""
    args: dict[str, Any] | None = None
    id: str | None = None


class _Part(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    inline_data: _Blob | None = None
    file_data: _FileData | None = None
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct):
    parts: list[_Part] = []
    role: str = "model"


class _Candidate(msgspec.Struct, rename="camel"):
    content: _Content | None = None
    finish_reason: str | None = None
    index: int = 0


class _PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class _Usage(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    total_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class _Response(msgspec.Struct, rename="camel"):
    candidates: list[_Candidate] = []
    prompt_feedback: _PromptFeedback | None = None
    usage_metadata: _Usage | None = None
    model_version: str = ""
    response_id: str = ""
    error: dict[str, Any] | None = None


class _ErrorDetail(msgspec.Struct, rename={"type": "@type", "retry_delay": "retryDelay"}):
    type: str = ""
    reason: str | None = None
    retry_delay: str | None = None


class _Error(msgspec.Struct):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[_ErrorDetail] = []


class _ErrorBody(msgspec.Struct):
    error: _Error | None = None


_response_decoder = msgspec.json.Decoder(_Response)
_error_decoder = msgspec.json.Decoder(_ErrorBody)


# -- requests: canonical -> Gemini --


def model_path(model: str) -> str:
    """`models/<id>` for a bare id; tuned models and full resource names pass as written."""
    return model if "/" in model else f"models/{model}"


def encode_request(request: ChatRequest) -> bytes:
    """The generateContent body for `request` (the model goes in the URL, not the body)."""
    system, contents = _contents_out(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
    tool_config = _tool_config(request.tool_choice)
    if tool_config:
        body["toolConfig"] = tool_config
    generation = _generation_config(request)
    if generation:
        body["generationConfig"] = generation
    for key in PASSTHROUGH:
        if key in request.extra:
            body[key] = request.extra[key]
    return _encode(body)


def _contents_out(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    messages = late_system_as_user(messages)
    names = {c.id: c.name for m in messages for c in m.tool_calls or ()}
    for index, m in enumerate(messages):
        if m.role in ("system", "developer"):
            system.append({"text": m.text()})
            continue
        role = "model" if m.role == "assistant" else "user"
        parts = _message_parts(m, index, names)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        elif parts:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _message_parts(m: Message, index: int, names: dict[str, str]) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [_function_response(m, index, names)]
    parts: list[dict[str, Any]] = []
    if isinstance(m.content, str):
        if m.content:
            parts.append({"text": m.content})
    elif m.content:
        parts.extend(_part_out(p, index) for p in m.content)
    for call in m.tool_calls or ():
        parts.append(_function_call_out(call, index))
    return parts


def _function_call_out(call: ToolCall, index: int) -> dict[str, Any]:
    try:
        args = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        raise InvalidRequest(
            f"The arguments of tool call '{call.id}' are not JSON.", param=f"messages[{index}].tool_calls"
        ) from None
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": args}}
    _, _, signature = call.id.partition(SIGNATURE_SEPARATOR)
    if signature:
        part["thoughtSignature"] = signature
    return part


def _function_response(m: Message, index: int, names: dict[str, str]) -> dict[str, Any]:
    name = names.get(m.tool_call_id or "") or m.name
    if not name:
        raise InvalidRequest(
            f"Tool message {index} answers no earlier tool call (tool_call_id "
            f"{m.tool_call_id!r}); Gemini needs the function's name.",
            param=f"messages[{index}]",
        )
    text = m.text()
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    # `response` must be an object; Gemini documents `output` as the key for a plain result.
    response = value if isinstance(value, dict) else {"output": value}
    return {"functionResponse": {"name": name, "response": response}}


def _part_out(part: Part, index: int) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    if isinstance(part, ImagePart):
        return _media_out(part.url, "image/jpeg")
    data = part.data
    if data.get("type") == "input_audio" and isinstance(data.get("input_audio"), dict):
        audio = data["input_audio"]
        return {"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}}
    if data.get("type") == "file" and isinstance(data.get("file"), dict) and data["file"].get("file_data"):
        return _media_out(str(data["file"]["file_data"]), "application/pdf")
    raise InvalidRequest(
        f"Content parts of type {data.get('type')!r} cannot be sent to Gemini.", param=f"messages[{index}].content"
    )


_DATA_URL = re.compile(r"data:([^;,]+)?(?:;[^,]*)?;base64,(.*)", re.DOTALL)
_EXTENSION_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "mp4": "video/mp4",
}


def _media_out(url: str, default_type: str) -> dict[str, Any]:
    match = _DATA_URL.match(url)
    if match:
        return {"inlineData": {"mimeType": match.group(1) or default_type, "data": match.group(2)}}
    extension = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    return {"fileData": {"mimeType": _EXTENSION_TYPES.get(extension, default_type), "fileUri": url}}


def _declaration(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description:
        out["description"] = tool.description
    if tool.parameters:
        out["parametersJsonSchema"] = tool.parameters
    return out


def _tool_config(choice: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}} if name else None
    mode = {"none": "NONE", "auto": "AUTO", "required": "ANY"}.get(choice)
    return {"functionCallingConfig": {"mode": mode}} if mode else None


def _generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, key in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("max_tokens", "maxOutputTokens"),
        ("stop", "stopSequences"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = getattr(request, name)
        if value is not None:
            config[key] = value
    config.update(_response_format(request.response_format))
    thinking = _thinking(request.extra)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    return config


def _response_format(fmt: dict[str, Any] | None) -> dict[str, Any]:
    if not fmt or fmt.get("type") == "text":
        return {}
    out: dict[str, Any] = {"responseMimeType": "application/json"}
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    if schema is not None:
        out["responseJsonSchema"] = schema
    return out


def _thinking(extra: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(extra.get("thinkingConfig"), dict):
        return dict(extra["thinkingConfig"])
    budget = THINKING_BUDGETS.get(str(extra.get("reasoning_effort")))
    if budget is None:
        return None
    return {"thinkingBudget": budget, "includeThoughts": budget > 0}


# -- responses: Gemini -> canonical --


def decode_response(data: bytes, model: str, *, created: int | None = None) -> ChatResponse:
    """A generateContent reply as a canonical response; `model` is used when the reply names none."""
    wire = _decode(data)
    response_id = wire.response_id or uuid.uuid4().hex
    choices = [_choice_in(c, response_id) for c in wire.candidates]
    if not choices:
        if wire.prompt_feedback is None or wire.prompt_feedback.block_reason is None:
            raise MalformedReply("a response with neither candidates nor a block reason")
        choices = [Choice(index=0, message=Message(role="assistant", content=None), finish_reason="content_filter")]
    return ChatResponse(
        id=response_id,
        model=wire.model_version or model,
        created=created if created is not None else int(time.time()),
        choices=choices,
        usage=usage_in(wire.usage_metadata),
    )


def _decode(data: bytes) -> _Response:
    try:
        wire = _response_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a Gemini response: {exc}") from None
    if wire.error is not None:
        code = wire.error.get("code")
        raise GeminiError(code if isinstance(code, int) else 500, data)
    return wire


def _choice_in(candidate: _Candidate, response_id: str) -> Choice:
    text, reasoning, calls = _split_parts(candidate, response_id, 0)
    return Choice(
        index=candidate.index,
        message=Message(role="assistant", content=text, reasoning=reasoning, tool_calls=calls or None),
        finish_reason=finish_reason_in(candidate.finish_reason, bool(calls)),
    )


def _split_parts(
    candidate: _Candidate, response_id: str, first_call: int
) -> tuple[str | None, str | None, list[ToolCall]]:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for part in candidate.content.parts if candidate.content else ():
        if part.function_call is not None:
            calls.append(_tool_call_in(part, f"{response_id}_{candidate.index}_{first_call + len(calls)}"))
        elif part.text is not None:
            (thoughts if part.thought else texts).append(part.text)
    return ("".join(texts) if texts else None), ("".join(thoughts) if thoughts else None), calls


def _tool_call_in(part: _Part, fallback_id: str) -> ToolCall:
    call = part.function_call
    assert call is not None
    call_id = call.id or f"call_{fallback_id}"
    if part.thought_signature:
        call_id += SIGNATURE_SEPARATOR + part.thought_signature
    return ToolCall(id=call_id, name=call.name, arguments=_encode(call.args or {}).decode())


def finish_reason_in(reason: str | None, has_calls: bool) -> FinishReason | None:
    if reason is None:
        return None
    if has_calls and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


def usage_in(usage: _Usage | None) -> Usage | None:
    if usage is None:
        return None
    prompt = usage.prompt_token_count + usage.tool_use_prompt_token_count
    completion = usage.candidates_token_count + usage.thoughts_token_count
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=usage.total_token_count or prompt + completion,
        cached_tokens=usage.cached_content_token_count,
        reasoning_tokens=usage.thoughts_token_count,
    )


# -- streams: Gemini SSE events -> canonical chunks --


class StreamDecoder:
    """Turns the events of one streamGenerateContent reply into canonical chunks.

    Each event is a whole response holding the next parts; usage is cumulative, so it is
    kept and sent once, in a closing chunk, by `finish()`.
    """

    def __init__(self, model: str, *, created: int | None = None) -> None:
        self.model = model
        self.created = created if created is not None else int(time.time())
        self.id = ""
        self.usage: Usage | None = None
        self.finished = False
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}

    def feed(self, data: bytes) -> list[ChatChunk]:
        wire = _decode(data)
        self.id = self.id or wire.response_id or uuid.uuid4().hex
        self.model = wire.model_version or self.model
        self.usage = usage_in(wire.usage_metadata) or self.usage
        choices = [self._choice(c) for c in wire.candidates]
        if not choices and wire.prompt_feedback is not None and wire.prompt_feedback.block_reason is not None:
            choices = [ChunkChoice(index=0, delta=Delta(role="assistant"), finish_reason="content_filter")]
        if any(c.finish_reason is not None for c in choices):
            self.finished = True
        return [ChatChunk(id=self.id, model=self.model, created=self.created, choices=choices)] if choices else []

    def _choice(self, candidate: _Candidate) -> ChunkChoice:
        index = candidate.index
        first_call = self._calls.get(index, 0)
        text, reasoning, calls = _split_parts(candidate, self.id, first_call)
        self._calls[index] = first_call + len(calls)
        role = None if index in self._started else "assistant"
        self._started.add(index)
        deltas = [
            ToolCallDelta(index=first_call + i, id=c.id, name=c.name, arguments=c.arguments)
            for i, c in enumerate(calls)
        ]
        return ChunkChoice(
            index=index,
            delta=Delta(role=role, content=text, reasoning=reasoning, tool_calls=deltas or None),  # type: ignore[arg-type]
            finish_reason=finish_reason_in(candidate.finish_reason, self._calls[index] > 0),
        )

    def finish(self) -> ChatChunk | None:
        """The closing usage chunk, once the upstream has sent its last event."""
        if self.usage is None:
            return None
        return ChatChunk(id=self.id, model=self.model, created=self.created, choices=[], usage=self.usage)


# -- errors --


_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CONTEXT_LENGTH = re.compile(r"exceeds the maximum number of tokens|input token count.*exceeds", re.IGNORECASE)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)s$")


def _error_object(data: bytes) -> _Error | None:
    # Without `alt=sse` Gemini wraps errors in a one-element array.
    if data.lstrip().startswith(b"["):
        data = data.strip()[1:-1]
    try:
        return _error_decoder.decode(data).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def error_message(data: bytes) -> str:
    """`STATUS: message` from a Gemini error body (the body's start when it is not one)."""
    error = _error_object(data)
    if error is not None and error.message:
        return f"{error.status}: {error.message}" if error.status else error.message
    text = data.decode("utf-8", "replace").strip()
    return text[:300] or "empty body"


def classify_error(
    status: int, message: str, *, provider: str, retry_after: float | None, body: bytes | None
) -> UpstreamError:
    """`classify_status`, refined from the body: bad keys, context length, RetryInfo delays."""
    error = _error_object(body) if body else None
    kwargs: dict[str, Any] = {"provider": provider, "upstream_status": status, "body": body}
    if error is not None:
        reasons = {d.reason for d in error.details if d.reason}
        if status == 400 and "API_KEY_INVALID" in reasons:
            # Gemini reports a bad key as 400 INVALID_ARGUMENT; to a client it is an auth failure.
            return UpstreamClientError(message, **{**kwargs, "upstream_status": 401})
        if status == 400 and _CONTEXT_LENGTH.search(error.message):
            return ContextLengthExceeded(message, **kwargs)
        if retry_after is None:
            retry_after = _retry_delay(error)
    return classify_status(status, message, provider=provider, retry_after=retry_after, body=body)


def _retry_delay(error: _Error) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail: a protobuf duration such as `37s` or `1.5s`."""
    for detail in error.details:
        if detail.type.endswith("google.rpc.RetryInfo") and detail.retry_delay:
            match = _DURATION.match(detail.retry_delay)
            if match:
                return float(match.group(1))
    return None


def encode_error(error: LLMMuxError) -> bytes:
    """A gateway error in Gemini's shape, for clients that speak Gemini."""
    status = _GRPC_STATUS.get(error.status, "INTERNAL" if error.status >= 500 else "FAILED_PRECONDITION")
    return _encode({"error": {"code": error.status, "message": error.message, "status": status}})
