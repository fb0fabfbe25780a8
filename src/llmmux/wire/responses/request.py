"""A Responses API request body -> canonical chat request, for serving Responses clients.

Input items become chat messages: `message` items with `input_text`, `input_image`,
`input_file` and `output_text` parts; `function_call` items join the assistant turn before
them as tool calls; `function_call_output` items become tool messages (`custom_tool_call` and its output alike).
`instructions` is a system message in front, never carried into a continuation (as OpenAI
does). Tools are read by `tools`: function, custom and namespace tools become chat tools,
hosted tools are named in `hosted_tools` for the pipeline to drop or refuse.

The body itself travels too (`ChatRequest.passthrough`, wire `openai_responses`), so a backend
reached through its own `/v1/responses` receives it untouched but for `model` and any
sampling setting a step changed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ...errors import InvalidRequest
from ...tags import taken
from ...types import ChatRequest, ImagePart, Message, OtherPart, Part, TextPart, Tool, ToolCall
from ..openai import RESPONSES_WIRE, validation_message, validation_param
from .tools import CUSTOM_INPUT, ToolNames, decode_tools

WIRE = RESPONSES_WIRE
GATEWAY_FIELDS = ("provider", "provider_hint", "capability")
"""Routing hints of llmmux's own, never sent upstream."""
HOSTED_CALL_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_call",
        "mcp_list_tools",
        "tool_search_call",
        "tool_search_output",
    }
)
"""Input items that record a hosted tool's run: their results are already in the messages
around them, and a chat backend has no way to take them back, so they are left out for it."""

INPUT_ROLES = frozenset({"user", "assistant", "system", "developer"})
UNSUPPORTED = {
    "background": "background responses",
    "conversation": "conversations",
    "prompt": "prompt templates",
}
"""Request fields that need OpenAI's own servers: refused by name rather than ignored."""


class _Text(msgspec.Struct):
    format: dict[str, Any] | None = None
    verbosity: str | None = None


class _Reasoning(msgspec.Struct):
    effort: str | None = None
    summary: str | None = None


class _Request(msgspec.Struct):
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    tools: list[Any] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    text: _Text | None = None
    reasoning: _Reasoning | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    stream: bool | None = None
    previous_response_id: str | None = None
    truncation: str | None = None
    user: str | None = None
    service_tier: str | None = None
    provider: str | None = None
    provider_hint: str | None = None
    capability: str | None = None


class ResponsesRequest(msgspec.Struct, kw_only=True):
    """A validated Responses request: its input as messages, and what the response echoes.

    `chat` holds the generation settings with no messages yet: `chat_request` adds the
    instructions, the stored history of `previous_response_id` and the input.
    """

    model: str
    input: list[Message]
    instructions: str | None
    stream: bool
    store: bool
    previous_response_id: str | None
    echo: dict[str, Any]
    chat: ChatRequest
    names: ToolNames = msgspec.field(default_factory=ToolNames)


def decode_request(body: Any) -> ResponsesRequest:
    """Validate a Responses client's request and return it with its input as chat messages."""
    body, tags = taken(body)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    for field, what in UNSUPPORTED.items():
        if body.get(field):
            raise InvalidRequest(f"llmmux does not support {what} ('{field}').", param=field)
    if "input" not in body:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    try:
        wire = msgspec.convert(body, _Request)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(validation_message(exc), param=validation_param(exc)) from None
    if wire.max_output_tokens is not None and wire.max_output_tokens < 1:
        raise InvalidRequest("'max_output_tokens' must be at least 1.", param="max_output_tokens")
    decoded = decode_tools(wire.tools)
    tools, tool_choice = _tool_choice_in(wire.tool_choice, decoded.tools, decoded.names)
    store = True if wire.store is None else wire.store  # OpenAI stores unless told not to
    chat = _chat_template(wire, tools, tool_choice)
    chat.hosted_tools = decoded.hosted or None
    chat.tags, chat.client_wire = tags, WIRE
    chat.passing_through(body)  # taken again once `chat_request` has set the messages
    return ResponsesRequest(
        model=wire.model,
        input=input_messages(wire.input, decoded.names),
        instructions=wire.instructions or None,
        stream=bool(wire.stream),
        store=store,
        previous_response_id=wire.previous_response_id,
        echo=_echo(wire, store),
        chat=chat,
        names=decoded.names,
    )


def chat_request(request: ResponsesRequest, history: list[Message]) -> ChatRequest:
    """The chat request: instructions, then the stored conversation, then the new input."""
    system = [Message(role="system", content=request.instructions)] if request.instructions else []
    chat = msgspec.structs.replace(request.chat, messages=[*system, *history, *request.input])
    passthrough = request.chat.passthrough
    # The messages are the body's `input` (and the stored history): not a change to it.
    return chat.passing_through(passthrough.body) if passthrough is not None else chat


def _chat_template(wire: _Request, tools: list[Tool], tool_choice: str | dict[str, Any] | None) -> ChatRequest:
    extra: dict[str, Any] = {}
    if wire.parallel_tool_calls is not None and tools:
        extra["parallel_tool_calls"] = wire.parallel_tool_calls
    if wire.reasoning is not None and wire.reasoning.effort is not None:
        extra["reasoning_effort"] = wire.reasoning.effort
    return ChatRequest(
        model=wire.model,
        messages=[],
        stream=bool(wire.stream),
        include_usage=True,  # every Responses reply reports usage
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_tokens=wire.max_output_tokens,
        tools=tools or None,
        tool_choice=tool_choice,
        response_format=_format_in(wire.text.format if wire.text else None),
        user=wire.user,
        extra=extra,
        provider=wire.provider,
        provider_hint=wire.provider_hint,
        capability=wire.capability,
    )


def _echo(wire: _Request, store: bool) -> dict[str, Any]:
    """The request fields a response object repeats back, in OpenAI's order."""
    text: dict[str, Any] = {"format": (wire.text.format if wire.text and wire.text.format else {"type": "text"})}
    if wire.text and wire.text.verbosity:
        text["verbosity"] = wire.text.verbosity
    return {
        "instructions": wire.instructions,
        "max_output_tokens": wire.max_output_tokens,
        "parallel_tool_calls": True if wire.parallel_tool_calls is None else wire.parallel_tool_calls,
        "previous_response_id": wire.previous_response_id,
        "reasoning": {
            "effort": wire.reasoning.effort if wire.reasoning else None,
            "summary": wire.reasoning.summary if wire.reasoning else None,
        },
        "service_tier": wire.service_tier or "default",
        "store": store,
        "temperature": wire.temperature,
        "text": text,
        "tool_choice": wire.tool_choice if wire.tool_choice is not None else "auto",
        "tools": list(wire.tools or ()),
        "top_p": wire.top_p,
        "truncation": wire.truncation or "disabled",
        "user": wire.user,
        "metadata": wire.metadata or {},
    }


# -- input items --


def input_messages(value: str | list[dict[str, Any]], names: ToolNames | None = None) -> list[Message]:
    """`input` as chat messages; a function call joins the assistant turn it follows."""
    if isinstance(value, str):
        return [Message(role="user", content=value)]
    names = names or ToolNames()
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        kind = item.get("type", "message" if "role" in item else None) if isinstance(item, dict) else None
        if kind == "message":
            messages.append(_message_in(item, where))
        elif kind in ("function_call", "custom_tool_call"):
            _add_call(messages, _call_in(item, where, names))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.append(_output_in(item, where))
        elif kind == "reasoning" or kind in HOSTED_CALL_ITEMS:
            continue  # a previous turn's reasoning or hosted tool run: chat backends take none back
        elif kind == "item_reference":
            raise InvalidRequest(
                "Item references are not supported; send the item itself or use 'previous_response_id'.",
                param=f"{where}.type",
            )
        else:
            raise InvalidRequest(
                f"Input items of type {kind!r} are not supported; llmmux takes messages, "
                "function calls and function call outputs.",
                param=f"{where}.type",
            )
    return messages


def _message_in(item: dict[str, Any], where: str) -> Message:
    role = item.get("role")
    if role not in INPUT_ROLES:
        raise InvalidRequest(
            f"Invalid role {role!r}; expected user, assistant, system or developer.", param=f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return Message(role=role, content=content)
    if not isinstance(content, list):
        raise InvalidRequest(
            "A message's 'content' must be a string or a list of content parts.", param=f"{where}.content"
        )
    parts = [_part_in(p, f"{where}.content[{j}]") for j, p in enumerate(content)]
    return Message(role=role, content=_content(parts))


def _part_in(part: Any, where: str) -> Part:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "refusal"):
        text = part.get("refusal" if kind == "refusal" else "text")
        if not isinstance(text, str):
            raise InvalidRequest(
                f"An {kind} part needs a string '{'refusal' if kind == 'refusal' else 'text'}'.", param=where
            )
        return TextPart(text)
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequest(
                "An input_image part needs an 'image_url' (a URL or a data: URL); file ids are OpenAI's own.",
                param=f"{where}.image_url",
            )
        detail = part.get("detail")
        return ImagePart(url=url, detail=detail if isinstance(detail, str) else None)
    if kind == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str):
            raise InvalidRequest(
                "An input_file part needs 'file_data'; file ids and URLs are OpenAI's own.", param=f"{where}.file_data"
            )
        file = {"file_data": data, **({"filename": part["filename"]} if "filename" in part else {})}
        return OtherPart({"type": "file", "file": file})  # chat completions' file part
    raise InvalidRequest(f"Content parts of type {kind!r} are not supported.", param=f"{where}.type")


def _call_in(item: dict[str, Any], where: str, names: ToolNames) -> ToolCall:
    kind, call_id, name = item["type"], item.get("call_id"), item.get("name")
    arguments = item.get("arguments" if kind == "function_call" else "input")
    namespace = item.get("namespace")
    if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, str):
        field = "arguments" if kind == "function_call" else "input"
        raise InvalidRequest(f"A {kind} item needs string 'call_id', 'name' and '{field}'.", param=where)
    if kind == "custom_tool_call":
        arguments = msgspec.json.encode({CUSTOM_INPUT: arguments}).decode()
    flat = names.flat(name, namespace if isinstance(namespace, str) else None)
    return ToolCall(id=call_id, name=flat, arguments=arguments)


def _add_call(messages: list[Message], call: ToolCall) -> None:
    last = messages[-1] if messages else None
    if last is not None and last.role == "assistant":
        last.tool_calls = [*(last.tool_calls or ()), call]
    else:
        messages.append(Message(role="assistant", tool_calls=[call]))


def _output_in(item: dict[str, Any], where: str) -> Message:
    call_id, output = item.get("call_id"), item.get("output")
    if not isinstance(call_id, str):
        raise InvalidRequest(f"A {item['type']} item needs a string 'call_id'.", param=f"{where}.call_id")
    if isinstance(output, str):
        return Message(role="tool", tool_call_id=call_id, content=output)
    if not isinstance(output, list):
        raise InvalidRequest(
            f"A {item['type']}'s 'output' must be a string or a list of content parts.", param=f"{where}.output"
        )
    parts = [_part_in(p, f"{where}.output[{j}]") for j, p in enumerate(output)]
    return Message(role="tool", tool_call_id=call_id, content=_content(parts))


def _content(parts: list[Part]) -> str | list[Part]:
    """Text alone reads as a string, as most backends expect; anything else stays parts."""
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    return parts


# -- tools and formats --


def _tool_choice_in(
    choice: str | dict[str, Any] | None, tools: list[Tool], names: ToolNames
) -> tuple[list[Tool], str | dict[str, Any] | None]:
    """Chat's tool_choice; `allowed_tools` narrows the tools offered instead."""
    if choice is None or choice in ("auto", "none", "required"):
        return tools, choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if isinstance(choice, dict) and kind in ("function", "custom") and isinstance(choice.get("name"), str):
        flat = names.flat(choice["name"], choice.get("namespace") if isinstance(choice.get("namespace"), str) else None)
        return tools, {"type": "function", "function": {"name": flat}}
    if isinstance(choice, dict) and kind == "allowed_tools":
        allowed = {
            names.flat(t["name"], t.get("namespace") if isinstance(t.get("namespace"), str) else None)
            for t in choice.get("tools") or ()
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        }
        mode = choice.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise InvalidRequest("allowed_tools 'mode' must be 'auto' or 'required'.", param="tool_choice.mode")
        return [t for t in tools if t.name in allowed], mode
    if isinstance(choice, dict) and isinstance(kind, str):
        return tools, "auto"  # a hosted tool chosen: a chat backend cannot run it, so the model picks
    raise InvalidRequest(
        "'tool_choice' must be 'auto', 'none', 'required', a function or allowed_tools.", param="tool_choice"
    )


def _format_in(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format`."""
    kind = fmt.get("type") if fmt else None
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("A json_schema format needs a 'name' and a 'schema'.", param="text.format")
        schema = {k: fmt[k] for k in ("name", "schema", "description", "strict") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        f"Unknown text format type {kind!r}; expected text, json_object or json_schema.", param="text.format.type"
    )
