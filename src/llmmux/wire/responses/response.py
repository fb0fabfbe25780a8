"""Canonical chat replies -> Responses API `response` objects and their output items.

A chat backend's reasoning (`reasoning_content`) becomes a `reasoning` item with one
`reasoning_text` part, as OpenAI's open-weight models return it; a call to a flattened
namespace or custom tool gets its Responses name, `namespace` and item type back.
"""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from ...errors import LLMMuxError, RateLimited, UpstreamRateLimited
from ...types import ChatResponse, Message, ToolCall, Usage
from .request import WIRE, ResponsesRequest
from .tools import CUSTOM_INPUT, ToolNames
from .upstream import rename_model

INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Chat finish reasons that leave a response `incomplete`, and the reason it gives."""


def new_id(prefix: str) -> str:
    """An id in OpenAI's form: `resp_`, `msg_` or `fc_` and 48 hex digits."""
    return f"{prefix}_{os.urandom(24).hex()}"


class ResponseShell:
    """One response's identity and the request fields it echoes; renders it at each stage.

    >>> shell = ResponseShell(request, "public-model")
    >>> shell.render("in_progress", [])                      # for response.created
    >>> shell.render("completed", items, usage)              # the finished response
    """

    def __init__(self, request: ResponsesRequest, public: str) -> None:
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.public = public
        self.echo = request.echo
        self.names = request.names

    def render(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: Usage | None = None,
        *,
        incomplete: str | None = None,
        error: LLMMuxError | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error_out(error) if error is not None else None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
        }
        if status == "completed":
            body["completed_at"] = int(time.time())
        echo = self.echo
        body.update(
            instructions=echo["instructions"],
            max_output_tokens=echo["max_output_tokens"],
            max_tool_calls=None,
            model=self.public,
            output=output,
        )
        body.update(
            {
                k: echo[k]
                for k in (
                    "parallel_tool_calls",
                    "previous_response_id",
                    "reasoning",
                    "service_tier",
                    "store",
                    "temperature",
                    "text",
                    "tool_choice",
                    "tools",
                )
            }
        )
        body.update(
            top_logprobs=0,
            top_p=echo["top_p"],
            truncation=echo["truncation"],
            usage=usage_out(usage) if usage is not None else None,
            user=echo["user"],
            metadata=echo["metadata"],
        )
        return body


def status_of(finish_reason: str | None) -> tuple[str, str | None]:
    """The response's status and, when incomplete, why."""
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    return ("incomplete", reason) if reason else ("completed", None)


def encode_response(shell: ResponseShell, reply: ChatResponse) -> tuple[dict[str, Any], Message, bytes]:
    """The finished response (object and bytes), and its output as the message a continuation replays.

    A reply from an upstream's own Responses API is its bytes, with the public model name.
    """
    choice = reply.choices[0]
    message = Message(role="assistant", content=choice.message.text() or None, tool_calls=choice.message.tool_calls)
    if reply.raw is not None and reply.raw_wire == WIRE:
        raw = rename_model(reply.raw, reply.model, shell.public)
        body = msgspec.json.decode(raw)
        return body, message, raw
    status, incomplete = status_of(choice.finish_reason)
    items = output_items(message, "incomplete" if incomplete else "completed", shell.names, choice.message.reasoning)
    body = shell.render(status, items, reply.usage or Usage(), incomplete=incomplete)
    return body, message, msgspec.json.encode(body)


def output_items(
    message: Message, status: str, names: ToolNames | None = None, reasoning: str | None = None
) -> list[dict[str, Any]]:
    """Reasoning, then a `message` item for the text (left out when there are only calls), then one per call."""
    names = names or ToolNames()
    items: list[dict[str, Any]] = []
    if reasoning:
        items.append(reasoning_item(new_id("rs"), reasoning))
    text = message.text()
    if text or not message.tool_calls:
        items.append(message_item(new_id("msg"), status, [text_part(text)]))
    items.extend(call_item(new_id("fc"), call, "completed", names) for call in message.tool_calls or ())
    return items


def reasoning_item(item_id: str, text: str | None) -> dict[str, Any]:
    """Reasoning as text: `content` holds it whole (`None` while it streams), `summary` stays empty."""
    content = [{"type": "reasoning_text", "text": text}] if text is not None else []
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content}


def message_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def call_item(item_id: str, call: ToolCall, status: str, names: ToolNames | None = None) -> dict[str, Any]:
    """A `function_call` item, or a `custom_tool_call` for a custom tool; namespaced ones say where from."""
    origin = (names or ToolNames()).origin(call.name)
    item: dict[str, Any] = {"id": item_id, "type": "function_call", "status": status}
    if origin.custom:
        item.update(type="custom_tool_call", input=custom_input(call.arguments))
    else:
        item["arguments"] = call.arguments
    item.update(call_id=call.id, name=origin.name)
    if origin.namespace is not None:
        item["namespace"] = origin.namespace
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's freeform input from the chat call's `{"input": ...}`; other text as it came."""
    try:
        decoded = msgspec.json.decode(arguments)
    except msgspec.DecodeError:
        return arguments
    value = decoded.get(CUSTOM_INPUT) if isinstance(decoded, dict) else None
    return value if isinstance(value, str) else arguments


def usage_out(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def error_out(error: LLMMuxError) -> dict[str, Any]:
    """A failed response's `error`: its code is one of the few OpenAI documents for responses."""
    limited = isinstance(error, (RateLimited, UpstreamRateLimited))
    return {"code": "rate_limit_exceeded" if limited else "server_error", "message": error.message}
