"""Canonical `ChatRequest` -> an Anthropic Messages request body, for calling Claude.

Anthropic differs from the canonical (OpenAI-shaped) request in ways that matter:
system prompts are a top-level field, not messages; turns alternate user/assistant, so
consecutive same-role messages merge; tool results are `tool_result` blocks inside a user
turn; tool calls are `tool_use` blocks whose `input` is a JSON object, not text; and
`max_tokens` is required.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from ...errors import InvalidRequest
from ...types import ChatRequest, ImagePart, Message, OtherPart, Part, TextPart, Tool, ToolCall
from ..passthrough import Sources, body_for, kept_items
from .common import DEFAULT_MAX_TOKENS, GATEWAY_FIELDS, WIRE, encode

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
DOCUMENT_TYPES = frozenset({"application/pdf"})

PASSTHROUGH_BLOCKS = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "thinking",
        "redacted_thinking",
        "tool_use",
        "tool_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "container_upload",
    }
)
"""Anthropic block types an `OtherPart` may already be (e.g. from an Anthropic client); sent verbatim."""

EXTRA_FIELDS = ("thinking",)
"""Fields of `ChatRequest.extra` that mean the same to Anthropic. Others (OpenAI's `metadata`,
`service_tier`, `logprobs`, ...) are dropped: their OpenAI meaning would be rejected or misread."""

SOURCES: Sources = {
    "system": ("messages",),
    "messages": ("messages",),
    "max_tokens": ("max_tokens",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "top_k": ("top_k",),
    "stop_sequences": ("stop",),
    "tools": ("tools",),
    "tool_choice": ("tool_choice",),
    "metadata": ("user",),
    "thinking": ("extra",),
}
"""What each key of a Messages body is made from, for a body that passes through; any other
key (a beta's, `output_config`, ...) passes through as the client sent it."""

Block = dict[str, Any]


def encode_chat_request(
    request: ChatRequest, model: str, *, stream: bool, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> bytes:
    """The body for `POST /v1/messages` asking for `model`.

    A request that arrived in Anthropic's own format travels as the client sent it, with only
    `model` (and `stream`, to match the call) rewritten and the gateway's routing hints removed.
    """
    if request.passthrough is not None and request.client_wire == WIRE:
        body = body_for(request, SOURCES, lambda: _passthrough_keys(request, default_max_tokens), unlisted=())
        for key in GATEWAY_FIELDS:
            body.pop(key, None)
    else:
        body = request_body(request, default_max_tokens)
    body["model"] = model
    if stream:
        body["stream"] = True
    else:
        body.pop("stream", None)
    return encode(body)


def _passthrough_keys(request: ChatRequest, default_max_tokens: int) -> dict[str, Any]:
    """`request_body` for a body that passes through: the client's tools that are still offered
    stay as sent (cache marks, server tools), after a step narrowed or extended them."""
    body = request_body(request, default_max_tokens)
    sent = request.passthrough.body.get("tools") if request.passthrough is not None else None
    offered = {tool.name: tool for tool in request.tools or ()}
    tools = kept_items(sent, offered, _custom_name, tool_out)
    if tools:
        body["tools"] = tools
    return body


def _custom_name(tool: Any) -> str | None:
    """A client-run tool's name; None for a server tool (`web_search_...`), which Anthropic runs."""
    if isinstance(tool, dict) and tool.get("type") in (None, "custom") and isinstance(tool.get("name"), str):
        return str(tool["name"])
    return None


def request_body(request: ChatRequest, default_max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, Any]:
    """The Anthropic body for a canonical request, without `model` and `stream`."""
    if request.n is not None and request.n > 1:
        raise InvalidRequest("Anthropic models return one choice per request; 'n' must be 1.", param="n")
    system, messages = messages_out(request.messages)
    body: dict[str, Any] = {"max_tokens": request.max_tokens or default_max_tokens, "messages": messages}
    if system is not None:
        body["system"] = system
    for key, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("top_k", request.top_k),
        ("stop_sequences", request.stop),
    ):
        if value is not None:
            body[key] = value
    if request.tools:
        body["tools"] = [tool_out(t) for t in request.tools]
    choice = tool_choice_out(request.tool_choice, request.extra.get("parallel_tool_calls"))
    if choice is not None:
        body["tool_choice"] = choice
    if request.user:
        body["metadata"] = {"user_id": request.user}
    for key in EXTRA_FIELDS:
        if key in request.extra:
            body[key] = request.extra[key]
    return body


# -- messages --


def messages_out(messages: list[Message]) -> tuple[str | list[Block] | None, list[Block]]:
    """(system, turns): system and developer messages hoisted, same-role neighbours merged."""
    system: list[Block] = []
    turns: list[Block] = []
    for i, m in enumerate(messages):
        if m.role in ("system", "developer"):
            system.extend(_system_blocks(m, i))
            continue
        role, blocks = _turn(m, i)
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty message carries nothing anyway
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return _system_out(system), [_compact(t) for t in turns]


def _system_blocks(m: Message, i: int) -> list[Block]:
    blocks = []
    for j, part in enumerate(_parts(m.content)):
        block = part_out(part, f"messages[{i}].content[{j}]")
        if block["type"] != "text":
            raise InvalidRequest("Anthropic system prompts take text only.", param=f"messages[{i}].content[{j}]")
        if block.get("text"):
            blocks.append(block)
    return blocks


def _system_out(blocks: list[Block]) -> str | list[Block] | None:
    if not blocks:
        return None
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return str(blocks[0]["text"])
    return blocks


def _turn(m: Message, i: int) -> tuple[str, list[Block]]:
    if m.role == "tool":
        return "user", [_tool_result(m, i)]
    blocks = [part_out(p, f"messages[{i}].content[{j}]") for j, p in enumerate(_parts(m.content))]
    blocks = [b for b in blocks if not (b["type"] == "text" and not b.get("text"))]
    if m.role == "assistant":
        blocks += [_tool_use(c, f"messages[{i}].tool_calls[{k}]") for k, c in enumerate(m.tool_calls or ())]
        # `reasoning` is not sent back: Anthropic only accepts thinking blocks with the
        # signature it issued, which the canonical message does not carry.
        return "assistant", blocks
    return "user", blocks


def _compact(turn: Block) -> Block:
    """Tool results first in a user turn (Anthropic requires it); a lone plain text as a string."""
    blocks: list[Block] = turn["content"]
    if turn["role"] == "user":
        blocks.sort(key=lambda b: b["type"] != "tool_result")  # stable: keeps each group's order
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        return {"role": turn["role"], "content": blocks[0]["text"]}
    return turn


def _parts(content: str | list[Part] | None) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    return content


def part_out(part: Part, where: str) -> Block:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return image_block(part.url, f"{where}.image_url")
    return _other_part(part, where)


def _other_part(part: OtherPart, where: str) -> Block:
    kind = part.data.get("type")
    if kind in PASSTHROUGH_BLOCKS:
        return part.data
    file = part.data.get("file")
    if kind == "file" and isinstance(file, dict) and isinstance(file.get("file_data"), str):
        return image_block(file["file_data"], f"{where}.file.file_data")
    raise InvalidRequest(f"Content parts of type {kind!r} cannot be sent to an Anthropic model.", param=where)


def image_block(url: str, where: str) -> Block:
    """An image (or PDF) block from an http(s) URL or a base64 `data:` URL."""
    if url.startswith("data:"):
        media_type, data = _data_url(url, where)
        kind = "document" if media_type in DOCUMENT_TYPES else "image"
        return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest("An image URL must be an http(s) URL or a base64 data: URL.", param=where)


def _data_url(url: str, where: str) -> tuple[str, str]:
    header, comma, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64":
        raise InvalidRequest("A data: URL must look like data:image/png;base64,<data>.", param=where)
    if media_type not in IMAGE_TYPES | DOCUMENT_TYPES:
        supported = ", ".join(sorted(IMAGE_TYPES | DOCUMENT_TYPES))
        raise InvalidRequest(
            f"Media type {media_type!r} is not supported by Anthropic; use one of {supported}.", param=where
        )
    try:
        # Checked here so a bad image gets an error naming its field, not an upstream 400.
        if not data or not base64.b64decode(data, validate=True):
            raise ValueError
    except (binascii.Error, ValueError):
        raise InvalidRequest("The data: URL does not hold valid base64.", param=where) from None
    return media_type, data


# -- tools --


def _tool_use(call: ToolCall, where: str) -> Block:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments, where)}


def tool_input(arguments: str, where: str) -> dict[str, Any]:
    """A tool call's JSON text as the object Anthropic's `input` must be."""
    if not arguments.strip():
        return {}
    try:
        value = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        raise InvalidRequest(
            "Tool call arguments must be a JSON object; they are not valid JSON.", param=f"{where}.function.arguments"
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequest("Tool call arguments must be a JSON object.", param=f"{where}.function.arguments")
    return value


def _tool_result(m: Message, i: int) -> Block:
    if not m.tool_call_id:
        raise InvalidRequest("A tool message needs the 'tool_call_id' it answers.", param=f"messages[{i}].tool_call_id")
    block: Block = {"type": "tool_result", "tool_use_id": m.tool_call_id}
    if isinstance(m.content, str):
        if m.content:
            block["content"] = m.content
    elif m.content:
        block["content"] = [part_out(p, f"messages[{i}].content[{j}]") for j, p in enumerate(m.content)]
    return block


def tool_out(tool: Tool) -> Block:
    out: Block = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    # `input_schema` is required; a function without parameters takes an empty object.
    out["input_schema"] = tool.parameters if tool.parameters is not None else {"type": "object", "properties": {}}
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


_CHOICES = {"auto": {"type": "auto"}, "none": {"type": "none"}, "required": {"type": "any"}}


def tool_choice_out(choice: str | dict[str, Any] | None, parallel: object = None) -> Block | None:
    """OpenAI's tool_choice in Anthropic's terms; `parallel_tool_calls: false` rides along on it."""
    out: Block | None
    if choice is None:
        out = None
    elif isinstance(choice, str) and choice in _CHOICES:
        out = dict(_CHOICES[choice])
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidRequest("A named tool_choice needs 'function.name'.", param="tool_choice.function.name")
        out = {"type": "tool", "name": name}
    else:
        raise InvalidRequest(
            'tool_choice must be \'auto\', \'none\', \'required\' or {"type": "function", "function": {"name": ...}}.',
            param="tool_choice",
        )
    if parallel is False and (out is None or out["type"] != "none"):
        out = out or {"type": "auto"}
        out["disable_parallel_tool_use"] = True
    return out
