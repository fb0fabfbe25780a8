"""OpenAI's Responses API (`POST /v1/responses`) as the fake OpenAI server speaks it.

The answer is the fake's usual one (a scripted `Reply`, else `echo_prefix` + the last user
text), dressed as a `response` object or, with `"stream": true`, as the event sequence OpenAI
sends: `response.created`, `response.in_progress`, per item `response.output_item.added`,
its deltas and done events, `response.output_item.done`, then `response.completed` (or
`response.incomplete` when `max_output_tokens` cut the text). Scripted tool calls come back
as `function_call` items when the request offers tools; a call named `ns.fn` is a call to
`fn` in namespace `ns`. Every event has a `sequence_number`, as OpenAI's do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from .base import Reply, ToolCall

__all__ = ["last_input_text", "response_events", "response_object"]


def last_input_text(body: Mapping[str, Any]) -> str:
    """The text of the request's last user message (a string `input` is one)."""
    value = body.get("input")
    if isinstance(value, str):
        return value
    users = [i for i in value or () if isinstance(i, dict) and i.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict) and p.get("type") == "input_text")


def _input_tokens(body: Mapping[str, Any]) -> int:
    return len(json.dumps(body.get("input", "")).split())


def _call_item(seq: int, index: int, call: ToolCall, status: str, arguments: str) -> dict[str, Any]:
    namespace, _, name = call.name.rpartition(".")
    item = {
        "id": f"fc_fake{seq:06d}_{index}",
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call.id or f"call_{seq:04d}_{index}",
        "name": name,
    }
    if namespace:
        item["namespace"] = namespace
    return item


def _message_item(seq: int, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    return {"id": f"msg_fake{seq:06d}", "type": "message", "status": status, "content": content, "role": "assistant"}


def _plan(body: Mapping[str, Any], reply: Reply, echo_prefix: str) -> tuple[str | None, tuple[ToolCall, ...], bool]:
    calls = reply.tool_calls if body.get("tools") else ()
    text = reply.content
    if text is None and not calls:
        text = echo_prefix + last_input_text(body)
    limit = body.get("max_output_tokens")
    cut = isinstance(limit, int) and text is not None and len(text.split()) > limit
    if cut and text is not None and isinstance(limit, int):
        text = " ".join(text.split()[:limit])
    return text, calls, cut


def response_object(
    body: Mapping[str, Any], reply: Reply, seq: int, echo_prefix: str, *, status: str | None = None
) -> dict[str, Any]:
    """The finished `response` object for `body`."""
    text, calls, cut = _plan(body, reply, echo_prefix)
    output = [_message_item(seq, "incomplete" if cut else "completed", text)] if text is not None else []
    output += [_call_item(seq, i, c, "completed", c.arguments) for i, c in enumerate(calls)]
    return _shell(body, seq, status or ("incomplete" if cut else "completed"), output, text, calls, reply)


def _shell(
    body: Mapping[str, Any],
    seq: int,
    status: str,
    output: list[dict[str, Any]],
    text: str | None,
    calls: tuple[ToolCall, ...],
    reply: Reply,
) -> dict[str, Any]:
    output_tokens = len((text or "").split()) + sum(len(c.arguments.split()) for c in calls)
    usage = dict(reply.usage) if reply.usage is not None else _usage(_input_tokens(body), output_tokens)
    return {
        "id": f"resp_fake{seq:06d}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None if status in ("in_progress", "queued") else usage,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def response_events(body: Mapping[str, Any], reply: Reply, seq: int, echo_prefix: str, parts: int) -> list[bytes]:
    """The SSE frames of a streamed response, as OpenAI sends them."""
    text, calls, cut = _plan(body, reply, echo_prefix)
    events: list[dict[str, Any]] = []
    started = _shell(body, seq, "in_progress", [], None, (), reply)
    events += [{"type": "response.created", "response": started}, {"type": "response.in_progress", "response": started}]
    output: list[dict[str, Any]] = []
    if text is not None:
        item = _message_item(seq, "in_progress", None)
        where = {"item_id": item["id"], "output_index": 0}
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        events += [
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.content_part.added", **where, "content_index": 0, "part": part},
        ]
        events += [
            {"type": "response.output_text.delta", **where, "content_index": 0, "delta": piece, "logprobs": []}
            for piece in _pieces(text, parts)
        ]
        done = _message_item(seq, "incomplete" if cut else "completed", text)
        events += [
            {"type": "response.output_text.done", **where, "content_index": 0, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **where, "content_index": 0, "part": done["content"][0]},
            {"type": "response.output_item.done", "output_index": 0, "item": done},
        ]
        output.append(done)
    for i, call in enumerate(calls):
        index = len(output)
        item = _call_item(seq, i, call, "in_progress", "")
        where = {"item_id": item["id"], "output_index": index}
        events.append({"type": "response.output_item.added", "output_index": index, "item": item})
        events += [
            {"type": "response.function_call_arguments.delta", **where, "delta": piece}
            for piece in _pieces(call.arguments, parts)
        ]
        done = _call_item(seq, i, call, "completed", call.arguments)
        events += [
            {"type": "response.function_call_arguments.done", **where, "arguments": call.arguments},
            {"type": "response.output_item.done", "output_index": index, "item": done},
        ]
        output.append(done)
    status = "incomplete" if cut else "completed"
    final = _shell(body, seq, status, output, text, calls, reply)
    events.append({"type": f"response.{status}", "response": final})
    return [_frame({**event, "sequence_number": n}) for n, event in enumerate(events)]


def _pieces(text: str, parts: int) -> list[str]:
    """`text` in at most `parts` non-empty pieces (none for empty text)."""
    size = max(1, -(-len(text) // max(1, parts)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":")).encode()
    return b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n"
