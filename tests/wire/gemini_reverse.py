"""Gemini's format from the other side: decode a generateContent request, encode answers.

The inverse of `wire.gemini`, kept with the tests as the oracle for their round trips
(llmmux serves no Gemini-format door). Pure translation, no I/O.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from llmmux.errors import InvalidRequest
from llmmux.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    OtherPart,
    Part,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from llmmux.wire.gemini import _FINISH_OUT, PASSTHROUGH, SIGNATURE_SEPARATOR, WIRE

_encode = msgspec.json.encode
_GENERATION = {
    "temperature": "temperature",
    "topP": "top_p",
    "topK": "top_k",
    "maxOutputTokens": "max_tokens",
    "stopSequences": "stop",
    "candidateCount": "n",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}


# -- requests: Gemini -> canonical --


def decode_request(body: Any, model: str, *, stream: bool = False) -> ChatRequest:
    """A client's generateContent body (the model came in the URL) in canonical form."""
    if not isinstance(body, dict) or not isinstance(body.get("contents"), list):
        raise InvalidRequest("The request body must be a JSON object with a 'contents' list.", param="contents")
    messages = _system_in(body.get("systemInstruction"))
    pending: list[ToolCall] = []
    for i, content in enumerate(body["contents"]):
        if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
            raise InvalidRequest("Each content needs a 'parts' list.", param=f"contents[{i}].parts")
        if content.get("role") == "model":
            messages.append(_model_turn(content["parts"], pending))
        else:
            messages.extend(_user_turn(content["parts"], pending, i))
    generation = body.get("generationConfig") or {}
    fields = {name: generation[key] for key, name in _GENERATION.items() if key in generation}
    extra = {k: body[k] for k in PASSTHROUGH if k in body}
    if "thinkingConfig" in generation:
        extra["thinkingConfig"] = generation["thinkingConfig"]
    return ChatRequest(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=stream,
        tools=_tools_in(body.get("tools")),
        tool_choice=_tool_choice_in(body.get("toolConfig")),
        response_format=_format_in(generation),
        extra=extra,
        client_wire=WIRE,
        **fields,
    )


def _system_in(instruction: Any) -> list[Message]:
    if not isinstance(instruction, dict):
        return []
    texts = [
        p["text"] for p in instruction.get("parts") or () if isinstance(p, dict) and isinstance(p.get("text"), str)
    ]
    return [Message(role="system", content=t) for t in texts]


def _model_turn(parts: list[Any], pending: list[ToolCall]) -> Message:
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    for part in parts:
        if "functionCall" in part:
            call = part["functionCall"]
            call_id = call.get("id") or f"call_{len(pending)}"
            if part.get("thoughtSignature"):
                call_id += SIGNATURE_SEPARATOR + part["thoughtSignature"]
            calls.append(
                ToolCall(id=call_id, name=call.get("name", ""), arguments=_encode(call.get("args") or {}).decode())
            )
            pending.append(calls[-1])
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    return Message(
        role="assistant",
        content="".join(texts) if texts else None,
        reasoning="".join(thoughts) if thoughts else None,
        tool_calls=calls or None,
    )


def _user_turn(parts: list[Any], pending: list[ToolCall], index: int) -> list[Message]:
    messages: list[Message] = []
    content: list[Part] = []
    for part in parts:
        if "functionResponse" in part:
            messages.append(_tool_result(part["functionResponse"], pending, index))
        else:
            content.append(_part_in(part, index))
    if content:
        text_only = all(isinstance(p, TextPart) for p in content)
        messages.append(
            Message(
                role="user",
                content="".join(p.text for p in content if isinstance(p, TextPart)) if text_only else content,
            )
        )
    return messages


def _tool_result(response: dict[str, Any], pending: list[ToolCall], index: int) -> Message:
    name = response.get("name")
    call = next((c for c in pending if c.name == name), None)
    if call is None:
        raise InvalidRequest(f"functionResponse {name!r} answers no earlier functionCall.", param=f"contents[{index}]")
    pending.remove(call)
    value = response.get("response")
    if isinstance(value, dict) and list(value) == ["output"]:
        value = value["output"]
    text = value if isinstance(value, str) else _encode(value).decode()
    return Message(role="tool", content=text, tool_call_id=call.id, name=name)


def _part_in(part: dict[str, Any], index: int) -> Part:
    if isinstance(part.get("text"), str):
        return TextPart(part["text"])
    if isinstance(part.get("inlineData"), dict):
        blob = part["inlineData"]
        url = f"data:{blob.get('mimeType', '')};base64,{blob.get('data', '')}"
        return (
            ImagePart(url=url)
            if str(blob.get("mimeType", "")).startswith("image/")
            else OtherPart({"type": "file", "file": {"file_data": url}})
        )
    if isinstance(part.get("fileData"), dict):
        return ImagePart(url=str(part["fileData"].get("fileUri", "")))
    raise InvalidRequest(
        "Unsupported part: expected text, inlineData, fileData, functionCall or functionResponse.",
        param=f"contents[{index}].parts",
    )


def _tools_in(tools: Any) -> list[Tool] | None:
    declared = [d for t in tools or () if isinstance(t, dict) for d in t.get("functionDeclarations") or ()]
    return [
        Tool(
            name=d["name"],
            description=d.get("description"),
            parameters=d.get("parametersJsonSchema") or d.get("parameters"),
        )
        for d in declared
    ] or None


def _tool_choice_in(config: Any) -> str | dict[str, Any] | None:
    calling = (config or {}).get("functionCallingConfig") or {}
    mode, names = calling.get("mode"), calling.get("allowedFunctionNames") or []
    if mode == "ANY" and len(names) == 1:
        return {"type": "function", "function": {"name": names[0]}}
    return {"NONE": "none", "AUTO": "auto", "ANY": "required"}.get(str(mode))


def _format_in(generation: dict[str, Any]) -> dict[str, Any] | None:
    if generation.get("responseMimeType") != "application/json":
        return None
    schema = generation.get("responseJsonSchema") or generation.get("responseSchema")
    if schema is None:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


# -- responses: canonical -> Gemini --


def encode_response(response: ChatResponse, public_model: str) -> bytes:
    candidates = [
        {
            "content": {
                "role": "model",
                "parts": _parts_out(
                    c.message.text() if c.message.content is not None else None,
                    c.message.reasoning,
                    c.message.tool_calls,
                ),
            },
            "finishReason": _FINISH_OUT.get(c.finish_reason or "stop", "STOP"),
            "index": c.index,
        }
        for c in response.choices
    ]
    body: dict[str, Any] = {"candidates": candidates, "modelVersion": public_model, "responseId": response.id}
    if response.usage is not None:
        body["usageMetadata"] = usage_out(response.usage)
    return _encode(body)


def _parts_out(text: str | None, reasoning: str | None, calls: list[ToolCall] | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if reasoning:
        parts.append({"text": reasoning, "thought": True})
    if text:
        parts.append({"text": text})
    for call in calls or ():
        call_id, _, signature = call.id.partition(SIGNATURE_SEPARATOR)
        part: dict[str, Any] = {"functionCall": {"id": call_id, "name": call.name, "args": _args(call.arguments)}}
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _args(arguments: str) -> Any:
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return {"arguments": arguments}


def usage_out(usage: Usage) -> dict[str, int]:
    out = {
        "promptTokenCount": usage.prompt_tokens,
        "candidatesTokenCount": usage.completion_tokens - usage.reasoning_tokens,
        "totalTokenCount": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        out["cachedContentTokenCount"] = usage.cached_tokens
    if usage.reasoning_tokens:
        out["thoughtsTokenCount"] = usage.reasoning_tokens
    return out


class StreamEncoder:
    """Canonical chunks as Gemini SSE event bodies.

    Gemini sends each function call whole, so argument fragments are held until their
    choice finishes; text and reasoning go out as they arrive.
    """

    def __init__(self, public_model: str) -> None:
        self.public_model = public_model
        self._calls: dict[tuple[int, int], list[str]] = {}

    def feed(self, chunk: ChatChunk) -> list[bytes]:
        events = []
        for choice in chunk.choices:
            d = choice.delta
            for t in d.tool_calls or ():
                held = self._calls.setdefault((choice.index, t.index), ["", "", ""])
                held[0] = t.id or held[0]
                held[1] = t.name or held[1]
                held[2] += t.arguments or ""
            calls = self._release(choice.index) if choice.finish_reason else None
            parts = _parts_out(d.content, d.reasoning, calls)
            if parts or choice.finish_reason:
                candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": choice.index}
                if choice.finish_reason:
                    candidate["finishReason"] = _FINISH_OUT.get(choice.finish_reason, "STOP")
                events.append(self._event({"candidates": [candidate]}, chunk))
        if chunk.usage is not None:
            events.append(self._event({"usageMetadata": usage_out(chunk.usage)}, chunk))
        return events

    def _release(self, index: int) -> list[ToolCall]:
        keys = sorted(k for k in self._calls if k[0] == index)
        return [ToolCall(id=c[0], name=c[1], arguments=c[2]) for c in (self._calls.pop(k) for k in keys)]

    def _event(self, body: dict[str, Any], chunk: ChatChunk) -> bytes:
        return _encode({**body, "modelVersion": self.public_model, "responseId": chunk.id})
