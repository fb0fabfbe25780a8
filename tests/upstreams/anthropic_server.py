"""A fake Anthropic Messages API for tests, speaking Anthropic's exact wire format.

Serves `POST /v1/messages` (a JSON `Message`, or with `"stream": true` an SSE event
stream) and `GET /v1/models` (paginated), with Anthropic's error bodies. It checks
requests the way the real API does where a translation bug would show (headers, required
and unknown fields, beta fields without their `anthropic-beta`, roles, the placement of
mid-conversation system turns, empty text, every `tool_use` answered first thing in the
next user turn), so a test cannot pass with a body Anthropic would refuse.

Answers are derived from the request unless scripted: text defaults to
`echo_prefix + <last user text>`. Streams are rendered event by event as Anthropic sends
them: a `ping` after the first block starts, tool input as `input_json_delta` pieces
(the first one empty), usage on `message_delta`. The non-streamed `Message` is assembled
from the same events, so both forms always agree.

Scripting uses the shared behaviours of `base` (`status`, `hang`, `drop`,
`drop_mid_stream`, `malformed`, ...) plus the Anthropic ones here: `reply` (thinking,
`stop_reason`), `error_event` (an `event: error` mid-stream), `overloaded` (529),
`rate_limited` (429 with retry-after), `prompt_too_long`, and `replay` (bytes sent as
they are, e.g. the documented examples below).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .base import (
    Endpoint,
    Exchange,
    FakeUpstream,
    HttpError,
    RecordedRequest,
    Reply,
    Status,
    ToolCall,
    send_json,
    send_sse,
    status,
    tool_call,
)

__all__ = [
    "API_KEY",
    "DOCUMENTED_MESSAGE",
    "DOCUMENTED_STREAM",
    "AnthropicReply",
    "FakeAnthropic",
    "error_event",
    "fail",
    "overloaded",
    "prompt_too_long",
    "rate_limited",
    "render_events",
    "replay",
    "reply",
    "sse",
    "tool_call",
]

API_KEY = "sk-ant-test-0123456789"
MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
KNOWN_FIELDS = frozenset(
    [
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
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
        "cache_control",
    ]
)
BETA_FIELDS = {"context_management": "context-management-2025-06-27"}
"""Body fields the API refuses without their beta in the `anthropic-beta` header."""
REQUEST_ID = "req_011CSHoEeqs5C35K2UUqR7Fy"

# The examples of Anthropic's API reference, byte for byte (Messages: the response example;
# streaming guide: "Basic streaming request", whose JSON has spaces after separators as printed).
DOCUMENTED_MESSAGE = (
    b'{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi! My name is Claude."}],'
    b'"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":2095,"output_tokens":503}}'
)
DOCUMENTED_STREAM = (
    b"event: message_start\n"
    b'data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", '
    b'"role": "assistant", "content": [], "model": "claude-opus-4-6", "stop_reason": null, "stop_sequence": null, '
    b'"usage": {"input_tokens": 25, "output_tokens": 1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}\n\n'
    b"event: ping\n"
    b'data: {"type": "ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}}\n\n'
    b"event: content_block_stop\n"
    b'data: {"type": "content_block_stop", "index": 0}\n\n'
    b"event: message_delta\n"
    b'data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, '
    b'"usage": {"output_tokens": 15}}\n\n'
    b"event: message_stop\n"
    b'data: {"type": "message_stop"}\n\n'
)

ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
"""Default (type, message) of `status(code)` errors, as Anthropic sends them."""
TYPE_MESSAGES = dict(ERRORS.values())


# -- behaviours --


@dataclass(frozen=True, kw_only=True)
class AnthropicReply(Reply):
    """A `Reply` with what only Anthropic has; `raw` replaces the whole answer with bytes."""

    thinking: str | None = None
    stop_reason: str | None = None
    error_after: int | None = None
    error_type: str = "overloaded_error"
    raw: bytes | None = None


def reply(
    content: str | None = None,
    *,
    tool_calls: Sequence[ToolCall] = (),
    thinking: str | None = None,
    stop_reason: str | None = None,
    usage: Mapping[str, int] | None = None,
    drop_after: int | None = None,
) -> AnthropicReply:
    """A well-formed answer; `usage` is Anthropic's (`input_tokens`, `cache_read_input_tokens`, ...)."""
    return AnthropicReply(
        content=content,
        tool_calls=tuple(tool_calls),
        thinking=thinking,
        stop_reason=stop_reason,
        usage=usage,
        drop_after=drop_after,
    )


def error_event(after: int, error_type: str = "overloaded_error", content: str | None = None) -> AnthropicReply:
    """Send `after` events of a normal stream, then `event: error` and end the body."""
    return AnthropicReply(content=content, error_after=after, error_type=error_type)


def replay(body: bytes) -> AnthropicReply:
    """Answer with exactly these bytes (a JSON message, or an event stream when streaming)."""
    return AnthropicReply(raw=body)


def anthropic_error(status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> HttpError:
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": REQUEST_ID}
    return HttpError(status, body, headers)


def fail(
    status_code: int,
    error_type: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Status:
    """An HTTP error in Anthropic's shape (defaults per status from `ERRORS`)."""
    default_type, default_message = ERRORS.get(status_code, ("api_error", "Error"))
    error = anthropic_error(status_code, error_type or default_type, message or default_message)
    return status(status_code, error.body, headers)


def overloaded() -> Status:
    return fail(529)


def rate_limited(retry_after: int = 7) -> Status:
    return fail(429, headers={"retry-after": str(retry_after)})


def prompt_too_long() -> Status:
    return fail(400, "invalid_request_error", "prompt is too long: 208656 tokens > 200000 maximum")


# -- the server --


class FakeAnthropic(FakeUpstream):
    """A fake Anthropic API on 127.0.0.1; `url` ends in `/v1`.

    api_key: requests need `x-api-key: <api_key>` (and an `anthropic-version` header).
    models: what `GET /v1/models` lists, in pages of `limit` (after `after_id`).
    """

    base_path = "/v1"

    def __init__(self, *, api_key: str = API_KEY, models: Sequence[str] = MODELS, echo_prefix: str = "Echo: ") -> None:
        super().__init__()
        self.api_key = api_key
        self.models = list(models)
        self.echo_prefix = echo_prefix

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [("POST", "/v1/messages", self._messages), ("GET", "/v1/models", self._list_models)]

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        error_type, default = ERRORS.get(status, ("api_error", f"HTTP {status}"))
        return anthropic_error(status, error_type, message or default).body

    def response_headers(self, record: RecordedRequest) -> Mapping[str, str]:
        return {"request-id": f"req_{record.seq:024x}"}

    async def _messages(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        body = ex.record.json
        check_request(body, ex.record.headers.get("anthropic-beta", ""))
        extra = ex.reply if isinstance(ex.reply, AnthropicReply) else AnthropicReply()
        if extra.raw is not None:
            return await _send_raw(ex, extra.raw, stream=bool(body.get("stream")))
        events = render_events(body, ex.reply, self.echo_prefix)
        if not body.get("stream"):
            return await send_json(ex, render_message(events))
        frames = [sse(e["type"], e) for e in events]
        if extra.error_after is not None:
            error = {
                "type": "error",
                "error": {"type": extra.error_type, "message": TYPE_MESSAGES.get(extra.error_type, "Error")},
            }
            frames = [*frames[: extra.error_after], sse("error", error)]  # no request_id inside a stream
        return await send_sse(ex, frames)

    async def _list_models(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        limit = int(ex.record.query.get("limit", "20"))
        after = ex.record.query.get("after_id")
        start = self.models.index(after) + 1 if after in self.models else 0
        page = self.models[start : start + limit]
        data = [
            {
                "type": "model",
                "id": m,
                "display_name": m.replace("-", " ").title(),
                "created_at": "2025-09-29T00:00:00Z",
                "max_input_tokens": 200000,
                "max_tokens": 64000,
            }
            for m in page
        ]
        return await send_json(
            ex,
            {
                "data": data,
                "has_more": start + limit < len(self.models),
                "first_id": page[0] if page else None,
                "last_id": page[-1] if page else None,
            },
        )

    def _check_auth(self, record: RecordedRequest) -> None:
        if record.headers.get("x-api-key") != self.api_key:
            raise anthropic_error(401, "authentication_error", "invalid x-api-key")
        if not record.headers.get("anthropic-version"):
            raise anthropic_error(400, "invalid_request_error", "anthropic-version: header is required")


async def _send_raw(ex: Exchange, data: bytes, *, stream: bool) -> web.StreamResponse:
    if not stream:
        return web.Response(body=data, content_type="application/json")
    return await send_sse(ex, [data])


def sse(name: str, payload: Mapping[str, Any]) -> bytes:
    """One event as the API frames it: its name, then compact JSON on one data line."""
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


# -- checking requests as the real API does --


def _invalid(message: str) -> HttpError:
    return anthropic_error(400, "invalid_request_error", message)


def check_request(body: Any, betas: str = "") -> None:
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    for key in ("model", "max_tokens", "messages"):
        if key not in body:
            raise _invalid(f"{key}: Field required")
    for key in body:
        if key not in KNOWN_FIELDS:
            raise _invalid(f"{key}: Extra inputs are not permitted")
        beta = BETA_FIELDS.get(key)
        if beta is not None and beta not in betas.split(","):
            raise _invalid(f"{key}: Extra inputs are not permitted (requires the '{beta}' beta)")
    if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
        raise _invalid("max_tokens: Input should be a valid integer greater than 0")
    messages = body["messages"]
    for i, message in enumerate(messages):
        before = messages[i - 1] if i else None
        _check_message(i, message, messages[i + 1] if i + 1 < len(messages) else None, before)


def _check_message(
    i: int, message: dict[str, Any], following: dict[str, Any] | None, before: dict[str, Any] | None = None
) -> None:
    if message.get("role") == "system":
        _check_system_turn(i, message, following, before)
        return
    if message.get("role") not in ("user", "assistant"):
        raise _invalid(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
    blocks = _blocks(message.get("content"))
    for j, block in enumerate(blocks):
        if block.get("type") == "text" and not block.get("text"):
            raise _invalid(f"messages.{i}.content.{j}.text: text content blocks must be non-empty")
    ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
    if ids:
        answered = _blocks(following.get("content")) if following and following.get("role") == "user" else []
        leading = [str(b.get("tool_use_id")) for b in answered[: len(ids)] if b.get("type") == "tool_result"]
        if sorted(leading) != sorted(ids):
            raise _invalid(f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after")


def _check_system_turn(
    i: int, message: dict[str, Any], following: dict[str, Any] | None, before: dict[str, Any] | None
) -> None:
    """A mid-conversation system turn, placed and shaped as the API's placement rules require."""
    if before is None or before.get("role") != "user":
        raise _invalid(f"messages.{i}: a system message must immediately follow a user message")
    if following is not None and following.get("role") != "assistant":
        raise _invalid(f"messages.{i}: a system message must be last or be followed by an assistant message")
    if any(b.get("type") != "text" or not b.get("text") for b in _blocks(message.get("content"))):
        raise _invalid(f"messages.{i}.content: system messages take non-empty text blocks only")


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


# -- rendering answers --


def _last_user_text(body: Mapping[str, Any]) -> str:
    for message in reversed(body["messages"]):
        if message["role"] == "user":
            texts = [b.get("text", "") for b in _blocks(message["content"]) if b.get("type") == "text"]
            if texts:
                return " ".join(texts)
    return ""


def _words(value: Any) -> int:
    return len(json.dumps(value).split())


def render_events(body: Mapping[str, Any], answer: Reply, echo_prefix: str = "Echo: ") -> list[dict[str, Any]]:
    """The events of one answer, `message_start` to `message_stop`."""
    thinking = answer.thinking if isinstance(answer, AnthropicReply) else None
    stop_reason = answer.stop_reason if isinstance(answer, AnthropicReply) else None
    calls = answer.tool_calls
    text = answer.content if answer.content is not None else ("" if calls else echo_prefix + _last_user_text(body))
    output = len(text.split()) + len((thinking or "").split()) + sum(_words(c.arguments) for c in calls)
    usage = dict(answer.usage or {"input_tokens": _words(body["messages"]) + _words(body.get("system", ""))})
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": body["model"],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1},
            },
        }
    ]
    blocks: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    if thinking:
        blocks.append(
            (
                {"type": "thinking", "thinking": "", "signature": ""},
                [{"type": "thinking_delta", "thinking": p} for p in _pieces(thinking)]
                + [{"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl"}],
            )
        )
    if text:
        blocks.append(({"type": "text", "text": ""}, [{"type": "text_delta", "text": p} for p in _pieces(text)]))
    for n, call in enumerate(calls):
        start = {"type": "tool_use", "id": call.id or f"toolu_01Fake{n:04d}", "name": call.name, "input": {}}
        pieces = ["", *_pieces(call.arguments)]
        blocks.append((start, [{"type": "input_json_delta", "partial_json": p} for p in pieces]))
    for index, (start, deltas) in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        if index == 0:
            events.append({"type": "ping"})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    stop = stop_reason or ("tool_use" if calls else "end_turn")
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": output},
        }
    )
    events.append({"type": "message_stop"})
    return events


def _pieces(text: str, parts: int = 3) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def render_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The non-streamed `Message` the events add up to."""
    message: dict[str, Any] = dict(events[0]["message"])
    content: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for event in events[1:]:
        if event["type"] == "content_block_start":
            content.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta":
            _apply(content[event["index"]], event["delta"], partial, event["index"])
        elif event["type"] == "message_delta":
            message.update(event["delta"])
            message["usage"] = {**message["usage"], **event["usage"]}
    for index, text in partial.items():
        content[index]["input"] = json.loads(text)
    message["content"] = content
    return message


def _apply(block: dict[str, Any], delta: dict[str, Any], partial: dict[int, str], index: int) -> None:
    kind = delta["type"]
    if kind == "text_delta":
        block["text"] += delta["text"]
    elif kind == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
    elif kind == "input_json_delta":
        partial[index] = partial.get(index, "") + delta["partial_json"]
