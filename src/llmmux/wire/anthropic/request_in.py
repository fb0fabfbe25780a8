"""An Anthropic Messages request body -> canonical `ChatRequest`, for serving Anthropic clients.

The body is validated as Anthropic would validate it, with errors naming the field. The
original body travels read-only in `passthrough`, so an Anthropic upstream receives exactly
what the client sent; the canonical form is what every other upstream gets. What it cannot express is lost
only for those, and named in `wire_only` (so the answer's `x-llmmux-dropped-params` says
so): beta fields (`context_management`, `container`, ...), `cache_control`, and server tools
(web search, code execution), which only Anthropic runs. Thinking signatures and `is_error`
on tool results are lost silently: they have no meaning elsewhere.

`{"role": "system"}` turns may stand anywhere in `messages` (mid-conversation system
messages); they stay where they stand in the canonical form.
Adaptive or budgeted thinking and `output_config.effort` become `extra["reasoning_effort"]`,
which OpenAI-format and Gemini upstreams honour.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...errors import InvalidRequest
from ...tags import taken
from ...types import ChatRequest, ImagePart, Message, OtherPart, Part, TextPart, Tool, ToolCall
from .common import WIRE, encode, validation_error

ROLES = frozenset({"user", "assistant", "system"})

MODELLED_FIELDS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "output_config",
        "provider",
        "provider_hint",
        "capability",
    }
)
"""Top-level fields with a canonical form; any other (a beta's) is `wire_only`."""

EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
"""Anthropic's `output_config.effort` as OpenAI's `reasoning_effort` (which stops at high)."""

# Thinking budgets (tokens) at or under which a budgeted thinking request reads as low, then medium.
LOW_BUDGET, MEDIUM_BUDGET = 4096, 16384


class _Message(msgspec.Struct):
    role: str
    content: str | list[dict[str, Any]]


class _Tool(msgspec.Struct):
    name: str
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None


class _ToolChoice(msgspec.Struct):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class _Metadata(msgspec.Struct):
    user_id: str | None = None


class _Request(msgspec.Struct):
    model: str
    max_tokens: int
    messages: list[_Message]
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    tools: list[_Tool] | None = None
    tool_choice: _ToolChoice | None = None
    metadata: _Metadata | None = None
    thinking: dict[str, Any] | None = None
    output_config: dict[str, Any] | None = None
    provider: str | None = None
    provider_hint: str | None = None
    capability: str | None = None


def decode_chat_request(body: Any) -> ChatRequest:
    """Validate an Anthropic client's request and return it in canonical form."""
    body, tags = taken(body)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        wire = msgspec.convert(body, _Request)
    except msgspec.ValidationError as exc:
        message, field = validation_error(exc)
        raise InvalidRequest(message, param=field) from None
    if wire.max_tokens < 1:
        raise InvalidRequest("'max_tokens' must be at least 1.", param="max_tokens")
    if not wire.messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    messages = _system_in(wire.system)
    cached = [len(messages) - 1] if messages and _marked(wire.system) else []
    for i, m in enumerate(wire.messages):
        turn = _message_in(m, i)
        messages.extend(turn)
        if turn and _marked(m.content):
            cached.append(len(messages) - 1)
    tools = [t for t in wire.tools or () if _is_custom(t)]
    marked_tools = any(t.cache_control is not None for t in wire.tools or ())
    extra: dict[str, Any] = {}
    if wire.thinking is not None:
        extra["thinking"] = wire.thinking
    effort = _effort(wire.thinking, wire.output_config)
    if effort is not None:
        extra["reasoning_effort"] = effort
    return ChatRequest(
        model=wire.model,
        messages=messages,
        stream=bool(wire.stream),
        include_usage=True,  # every Anthropic stream reports usage
        temperature=wire.temperature,
        top_p=wire.top_p,
        top_k=wire.top_k,
        max_tokens=wire.max_tokens,
        stop=wire.stop_sequences,
        tools=[_tool_in(t) for t in tools] or None,
        tool_choice=_tool_choice_in(wire.tool_choice, extra),
        user=wire.metadata.user_id if wire.metadata else None,
        extra=extra,
        provider=wire.provider,
        provider_hint=wire.provider_hint,
        capability=wire.capability,
        tags=tags,
        client_wire=WIRE,
        wire_only=_wire_only(body, wire, marks_cache=bool(cached) or marked_tools),
        cached_messages=tuple(cached),
        cached_tools=tuple(i for i, t in enumerate(tools) if t.cache_control is not None),
    ).passing_through(body)


def _marked(content: str | list[dict[str, Any]] | None) -> bool:
    """Whether a block of this content carries a `cache_control` breakpoint."""
    return isinstance(content, list) and any(isinstance(b, dict) and "cache_control" in b for b in content)


def _effort(thinking: dict[str, Any] | None, output: dict[str, Any] | None) -> str | None:
    """The reasoning effort a thinking request implies; None when it asks for none."""
    kind = thinking.get("type") if thinking else None
    effort = EFFORTS.get(str(output.get("effort"))) if output else None
    if kind == "disabled":
        return None
    if effort is not None:
        return effort
    if kind == "adaptive":
        return "high"  # Anthropic's default effort
    budget = thinking.get("budget_tokens") if thinking and kind == "enabled" else None
    if not isinstance(budget, int):
        return None
    return "low" if budget <= LOW_BUDGET else "medium" if budget <= MEDIUM_BUDGET else "high"


def _wire_only(body: dict[str, Any], wire: _Request, *, marks_cache: bool) -> tuple[str, ...]:
    """What only an Anthropic upstream can honour: beta fields, caching marks, server tools."""
    names = [key for key in body if key not in MODELLED_FIELDS]
    if wire.output_config and set(wire.output_config) - {"effort"}:
        names += [f"output_config.{key}" for key in wire.output_config if key != "effort"]
    names += [f"tools[{t.name}]" for t in wire.tools or () if not _is_custom(t)]
    if marks_cache and "cache_control" not in body:  # a top-level one is named already
        names.append("cache_control")
    return tuple(names)


def _system_in(system: str | list[dict[str, Any]] | None, where: str = "system") -> list[Message]:
    """The top-level system prompt, or a mid-conversation system turn: text blocks only."""
    if system is None or system == "":
        return []
    if isinstance(system, str):
        return [Message(role="system", content=system)]
    parts: list[Part] = []
    for j, block in enumerate(system):
        if block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise InvalidRequest("System blocks must be text blocks with a string 'text'.", param=f"{where}[{j}]")
        parts.append(TextPart(block["text"]))
    return [Message(role="system", content=_content(parts))] if parts else []


def _message_in(m: _Message, i: int) -> list[Message]:
    if m.role not in ROLES:
        raise InvalidRequest(
            f"Invalid role {m.role!r} in messages[{i}]; expected 'user', 'assistant' or 'system'.",
            param=f"messages[{i}].role",
        )
    if isinstance(m.content, str):
        return [Message(role=m.role, content=m.content)]  # type: ignore[arg-type]
    if m.role == "system":
        return _system_in(m.content, f"messages[{i}].content")
    if m.role == "assistant":
        return [_assistant_in(m.content, i)]
    return _user_in(m.content, i)


def _user_in(blocks: list[dict[str, Any]], i: int) -> list[Message]:
    """A user turn: its tool results become tool messages, ahead of whatever else it says."""
    results: list[Message] = []
    parts: list[Part] = []
    for j, block in enumerate(blocks):
        where = f"messages[{i}].content[{j}]"
        kind = _block_type(block, where)
        if kind == "tool_result":
            results.append(_tool_result_in(block, where))
        elif kind in ("tool_use", "thinking", "redacted_thinking"):
            raise InvalidRequest(f"A user message cannot contain a {kind!r} block.", param=f"{where}.type")
        else:
            parts.append(_part_in(block, kind, where))
    if parts:
        results.append(Message(role="user", content=_content(parts)))
    return results


def _assistant_in(blocks: list[dict[str, Any]], i: int) -> Message:
    parts: list[Part] = []
    calls: list[ToolCall] = []
    thinking: list[str] = []
    for j, block in enumerate(blocks):
        where = f"messages[{i}].content[{j}]"
        kind = _block_type(block, where)
        if kind == "tool_use":
            calls.append(_tool_use_in(block, where))
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_result":
            raise InvalidRequest("An assistant message cannot contain a 'tool_result' block.", param=f"{where}.type")
        else:
            parts.append(_part_in(block, kind, where))
    return Message(
        role="assistant",
        content=_content(parts) if parts else None,
        tool_calls=calls or None,
        reasoning="".join(thinking) or None,
    )


def _block_type(block: dict[str, Any], where: str) -> str:
    kind = block.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest("Each content block needs a string 'type'.", param=f"{where}.type")
    return kind


def _part_in(block: dict[str, Any], kind: str, where: str) -> Part:
    if kind == "text":
        if not isinstance(block.get("text"), str):
            raise InvalidRequest("A text block needs a string 'text'.", param=f"{where}.text")
        return TextPart(block["text"])
    if kind == "image":
        return ImagePart(url=_image_url(block.get("source"), f"{where}.source"))
    return OtherPart(block)  # documents, search results, ...: kept verbatim


def _image_url(source: Any, where: str) -> str:
    if not isinstance(source, dict):
        raise InvalidRequest("An image block needs a 'source' object.", param=where)
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str):
            raise InvalidRequest("A base64 image source needs string 'media_type' and 'data'.", param=where)
        return f"data:{media_type};base64,{data}"
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise InvalidRequest("A url image source needs a string 'url'.", param=f"{where}.url")
        return url
    raise InvalidRequest(f"Image source type {kind!r} is not supported; use 'base64' or 'url'.", param=f"{where}.type")


def _tool_use_in(block: dict[str, Any], where: str) -> ToolCall:
    ident, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(ident, str) or not isinstance(name, str):
        raise InvalidRequest("A tool_use block needs string 'id' and 'name'.", param=where)
    if not isinstance(arguments, dict):
        raise InvalidRequest("A tool_use block's 'input' must be an object.", param=f"{where}.input")
    return ToolCall(id=ident, name=name, arguments=encode(arguments).decode())


def _tool_result_in(block: dict[str, Any], where: str) -> Message:
    ident = block.get("tool_use_id")
    if not isinstance(ident, str):
        raise InvalidRequest("A tool_result block needs a string 'tool_use_id'.", param=f"{where}.tool_use_id")
    content = block.get("content")
    if content is None or isinstance(content, str):
        return Message(role="tool", tool_call_id=ident, content=content or "")
    if not isinstance(content, list):
        raise InvalidRequest(
            "A tool_result's 'content' must be a string or a list of blocks.", param=f"{where}.content"
        )
    parts = []
    for k, block in enumerate(content):
        inner = f"{where}.content[{k}]"
        parts.append(_part_in(block, _block_type(block, inner), inner))
    return Message(role="tool", tool_call_id=ident, content=_content(parts))


def _content(parts: list[Part]) -> str | list[Part]:
    """Text alone reads as a string, as most clients and upstreams expect; anything else stays parts."""
    if parts and all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    return parts


def _is_custom(tool: _Tool) -> bool:
    # Server tools (web search, code execution, ...) have a versioned type and no schema:
    # only Anthropic can run them, and they stay in the passthrough for an Anthropic upstream.
    return tool.type in (None, "custom") and tool.input_schema is not None


def _tool_in(tool: _Tool) -> Tool:
    return Tool(name=tool.name, description=tool.description, parameters=tool.input_schema, strict=tool.strict)


def _tool_choice_in(choice: _ToolChoice | None, extra: dict[str, Any]) -> str | dict[str, Any] | None:
    if choice is None:
        return None
    if choice.disable_parallel_tool_use:
        extra["parallel_tool_calls"] = False
    if choice.type == "auto":
        return "auto"
    if choice.type == "any":
        return "required"
    if choice.type == "none":
        return "none"
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice of type 'tool' needs a 'name'.", param="tool_choice.name")
        return {"type": "function", "function": {"name": choice.name}}
    raise InvalidRequest(
        f"Invalid tool_choice type {choice.type!r}; expected auto, any, tool or none.", param="tool_choice.type"
    )
