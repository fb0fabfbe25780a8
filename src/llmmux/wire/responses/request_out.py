"""A changed canonical request in the Responses API's own terms, for a body that passes through.

A Responses client's body reaches an upstream's own `/v1/responses` as sent
(`wire.passthrough`). When a step changed a canonical field (a dropped hosted tool, a
narrowed tool list, a capped output, an edited conversation), the keys made from it are
taken from here instead. Only called when something changed, so nothing here is on the
common path. Where the client's own items still say what the canonical request says (a
tool that survived, the `text` options beside its format), they are kept as sent.

    body = body_for(request, SOURCES, lambda: canonical_keys(request))
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...types import ChatRequest, ImagePart, Message, OtherPart, Part, TextPart, Tool
from ..passthrough import Sources
from .tools import CUSTOM_INPUT, ToolNames, decode_tools, flat_name

_SAMPLING = {"temperature": "temperature", "top_p": "top_p", "max_output_tokens": "max_tokens", "user": "user"}
REASONING_EFFORT = "reasoning_effort"
PARALLEL_TOOL_CALLS = "parallel_tool_calls"

SOURCES: Sources = {
    **{key: (name,) for key, name in _SAMPLING.items()},
    # The conversation: `instructions` is its leading system message; a changed one goes
    # out whole, so the stored turns `previous_response_id` stood for are in `input`.
    "input": ("messages",),
    "instructions": ("messages",),
    "previous_response_id": ("messages",),
    "tools": ("tools", "hosted_tools"),
    "tool_choice": ("tool_choice", "tools"),
    "text": ("response_format",),
    "reasoning": ("extra",),
    PARALLEL_TOOL_CALLS: ("extra",),
}
"""What each key of a Responses body is made from; any other key passes through as sent."""


def canonical_keys(request: ChatRequest) -> dict[str, Any]:
    """The keys of `SOURCES` as the canonical `request` now says them (absent: not set)."""
    sent: dict[str, Any] = dict(request.passthrough.body) if request.passthrough is not None else {}
    names = decode_tools(sent.get("tools")).names if isinstance(sent.get("tools"), list) else ToolNames()
    body = {key: value for key, name in _SAMPLING.items() if (value := getattr(request, name)) is not None}
    instructions, items = _conversation(request.messages, names)
    if instructions is not None:
        body["instructions"] = instructions
    body["input"] = items
    tools = _tools(request, sent.get("tools"))
    if tools:
        body["tools"] = tools
    choice = _tool_choice(request.tool_choice, sent.get("tool_choice"), names)
    if choice is not None and tools:
        body["tool_choice"] = choice
    text = _text(request.response_format, sent.get("text"))
    if text:
        body["text"] = text
    reasoning = _reasoning(request.extra.get(REASONING_EFFORT), sent.get("reasoning"))
    if reasoning:
        body["reasoning"] = reasoning
    if request.extra.get(PARALLEL_TOOL_CALLS) is not None:
        body[PARALLEL_TOOL_CALLS] = request.extra[PARALLEL_TOOL_CALLS]
    return body


# -- tools --


def _tools(request: ChatRequest, sent: Any) -> list[dict[str, Any]]:
    """The client's tools that are still offered, as sent, then any a step added."""
    offered = {tool.name: tool for tool in request.tools or ()}
    hosted = set(request.hosted_tools or ())
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for tool in sent if isinstance(sent, list) else ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind in ("function", "custom"):
            if tool.get("name") in offered:
                kept.append(tool)
                seen.add(tool["name"])
        elif kind == "namespace":
            members = [m for m in tool.get("tools") or () if flat_name(tool["name"], m.get("name", "")) in offered]
            seen.update(flat_name(tool["name"], m["name"]) for m in members)
            if members:
                kept.append({**tool, "tools": members})
        elif kind in hosted:
            kept.append(tool)
    return kept + [_function(tool) for name, tool in offered.items() if name not in seen]


def _function(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "function", "name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parameters"] = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _tool_choice(choice: str | dict[str, Any] | None, sent: Any, names: ToolNames) -> str | dict[str, Any] | None:
    """Chat's tool_choice in Responses terms; the client's own form where it still says the same."""
    if choice is None or isinstance(choice, str):
        if isinstance(sent, dict) and sent.get("type") == "allowed_tools" and sent.get("mode", "auto") == choice:
            return sent  # the door read allowed_tools as its mode plus a narrowed tool list
        return choice
    flat = (choice.get("function") or {}).get("name")
    if not isinstance(flat, str):
        return choice
    origin = names.origin(flat)
    out: dict[str, Any] = {"type": "custom" if origin.custom else "function", "name": origin.name}
    if origin.namespace:
        out["namespace"] = origin.namespace
    return out


# -- formats and options --


def _text(response_format: dict[str, Any] | None, sent: Any) -> dict[str, Any]:
    """`text` with the format the canonical request asks for; its other options (verbosity) as sent."""
    text = {k: v for k, v in sent.items() if k != "format"} if isinstance(sent, dict) else {}
    kind = response_format.get("type") if response_format else None
    if kind == "json_schema" and response_format is not None:
        text["format"] = {"type": "json_schema", **(response_format.get("json_schema") or {})}
    elif kind is not None:
        text["format"] = {"type": kind}
    return text


def _reasoning(effort: Any, sent: Any) -> dict[str, Any]:
    reasoning = {k: v for k, v in sent.items() if k != "effort"} if isinstance(sent, dict) else {}
    if effort is not None:
        reasoning["effort"] = effort
    return reasoning


# -- the conversation --


def _conversation(messages: list[Message], names: ToolNames) -> tuple[str | None, list[dict[str, Any]]]:
    """The leading system message as `instructions`, every other message as input items."""
    instructions = None
    if messages and messages[0].role == "system":
        instructions, messages = messages[0].text(), messages[1:]
    custom_calls: set[str] = set()
    items: list[dict[str, Any]] = []
    for message in messages:
        items += _items(message, names, custom_calls)
    return instructions, items


def _items(message: Message, names: ToolNames, custom_calls: set[str]) -> list[dict[str, Any]]:
    if message.role == "tool":
        kind = "custom_tool_call_output" if message.tool_call_id in custom_calls else "function_call_output"
        output = _parts(message.content, "input") if isinstance(message.content, list) else message.content or ""
        return [{"type": kind, "call_id": message.tool_call_id or "", "output": output}]
    items: list[dict[str, Any]] = []
    if message.content:
        side = "output" if message.role == "assistant" else "input"
        text = message.content
        items.append({"role": message.role, "content": text if isinstance(text, str) else _parts(text, side)})
    for call in message.tool_calls or ():
        origin = names.origin(call.name)
        item: dict[str, Any] = {"call_id": call.id, "name": origin.name}
        if origin.namespace:
            item["namespace"] = origin.namespace
        if origin.custom:
            custom_calls.add(call.id)
            item = {"type": "custom_tool_call", **item, "input": _custom_input(call.arguments)}
        else:
            item = {"type": "function_call", **item, "arguments": call.arguments}
        items.append(item)
    return items


def _parts(parts: list[Part], side: str) -> list[dict[str, Any]]:
    return [_part(part, side) for part in parts]


def _part(part: Part, side: str) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": f"{side}_text", "text": part.text}
    if isinstance(part, ImagePart):
        image: dict[str, Any] = {"type": "input_image", "image_url": part.url}
        return {**image, "detail": part.detail} if part.detail is not None else image
    if isinstance(part, OtherPart) and part.data.get("type") == "file":  # the door's reading of input_file
        return {"type": "input_file", **(part.data.get("file") or {})}
    return part.data


def _custom_input(arguments: str) -> str:
    """A custom tool's freeform input, from the one-parameter function call the door made of it."""
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        return arguments
    return str(value.get(CUSTOM_INPUT, "")) if isinstance(value, dict) else arguments
