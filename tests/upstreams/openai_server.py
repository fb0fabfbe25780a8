"""A fake OpenAI API server for tests, speaking OpenAI's exact wire format.

Serves `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
`/v1/responses` (see `openai_responses`) and `/v1/models` with deterministic answers derived from the request, so tests
can predict every byte the gateway should pass on:

* content defaults to `echo_prefix + <text of the last user message>` (for
  legacy completions, `echo_prefix + prompt`); streams split it into
  `stream_chunks` pieces;
* a "token" is a whitespace-separated word (`count_tokens`): prompt tokens
  count the words of every message, completion tokens the words of the
  content plus those of tool call arguments, for every choice;
* embeddings come from `fake_embedding(text, dimensions)`.

Faults and scripted answers come from the behaviours in `base`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from .base import (
    Endpoint,
    Exchange,
    FakeUpstream,
    HttpError,
    RecordedRequest,
    Reply,
    ToolCall,
    send_json,
    send_sse,
    sse_event,
)
from .openai_responses import response_events, response_object

__all__ = ["DEFAULT_MODELS", "FakeOpenAI", "count_tokens", "fake_embedding", "openai_error", "split_text"]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
"""What `GET /v1/models` lists when no model list is configured."""

MODEL_CREATED = 1_700_000_000
DONE = b"data: [DONE]\n\n"
BAD_JSON_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
    "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)
NO_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
STATUS_ERRORS: Mapping[int, tuple[str, str, str | None]] = {
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("Not found.", "invalid_request_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}
"""Default (message, type, code) of `status(code)` errors, as OpenAI sends them."""


# --------------------------------------------------------------------------
# Deterministic content
# --------------------------------------------------------------------------


def count_tokens(text: str) -> int:
    """The fake's tokenizer: whitespace-separated words."""
    return len(text.split())


def split_text(text: str, parts: int) -> list[str]:
    """Split `text` into at most `parts` non-empty, near-equal pieces."""
    parts = max(1, min(parts, len(text)))
    size, extra = divmod(len(text), parts)
    pieces, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return [p for p in pieces if p]


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic vector for `text`; values are exact in float32."""
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend((byte - 128) / 128 for byte in digest)
        block += 1
    return values[:dimensions]


def message_text(content: Any) -> str:
    """The text of a message's content: a string or a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return " ".join(t for t in texts if isinstance(t, str))
    return ""


def _last_user_text(messages: list[Any]) -> str:
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return message_text(users[-1].get("content")) if users else ""


def _prompt_tokens(messages: list[Any]) -> int:
    return sum(count_tokens(message_text(m.get("content"))) for m in messages if isinstance(m, dict))


def _truncate(text: str | None, limit: Any) -> tuple[str | None, bool]:
    """Cut `text` to `limit` tokens; say whether it was cut."""
    if text is None or not isinstance(limit, int) or count_tokens(text) <= limit:
        return text, False
    words = list(re.finditer(r"\S+", text))
    return (text[: words[limit - 1].end()] if limit > 0 else ""), True


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --------------------------------------------------------------------------
# Wire shapes
# --------------------------------------------------------------------------


def openai_error(
    status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> HttpError:
    """An error in OpenAI's `{"error": {...}}` shape, ready to raise."""
    return HttpError(status, {"error": {"message": message, "type": type, "param": param, "code": code}})


@dataclass(frozen=True)
class Answer:
    """What one choice says, before it is dressed in a wire shape."""

    content: str | None
    tool_calls: tuple[ToolCall, ...]
    finish_reason: str
    echoed: str = ""
    """The prompt a legacy completion echoes before its content (not billed)."""

    @property
    def text(self) -> str:
        return self.echoed + (self.content or "")

    @property
    def tokens(self) -> int:
        return count_tokens(self.content or "") + sum(count_tokens(t.arguments) for t in self.tool_calls)


@dataclass(frozen=True)
class Meta:
    """The fields every response and chunk of one completion share."""

    id: str
    created: int
    model: str
    fingerprint: str


def chat_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """Chat usage with the detail objects OpenAI always includes."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call_json(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _chat_message(answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None, "annotations": []}
    if answer.tool_calls:
        message["tool_calls"] = [_tool_call_json(c) for c in answer.tool_calls]
    return message


def chat_completion(meta: Meta, answer: Answer, n: int, usage: Mapping[str, Any]) -> dict[str, Any]:
    """A non-stream `chat.completion` object with `n` identical choices."""
    choices = [
        {"index": i, "message": _chat_message(answer), "logprobs": None, "finish_reason": answer.finish_reason}
        for i in range(n)
    ]
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        "usage": dict(usage),
        "service_tier": "default",
        "system_fingerprint": meta.fingerprint,
    }


def chat_deltas(answer: Answer, parts: int) -> list[dict[str, Any]]:
    """The deltas of one streamed choice, before its finish chunk.

    Role first (with the first tool call when there is no content, as
    OpenAI does), then content pieces, then each tool call: a header with
    id, type and name, then its argument fragments.
    """
    first: dict[str, Any] = {"role": "assistant", "content": None if answer.content is None else "", "refusal": None}
    deltas = [first] + [{"content": piece} for piece in split_text(answer.content or "", parts)]
    for index, call in enumerate(answer.tool_calls):
        header = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        if index == 0 and answer.content is None:
            first["tool_calls"] = [header]
        else:
            deltas.append({"tool_calls": [header]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}
            for fragment in split_text(call.arguments, parts)
        ]
    return deltas


def chat_chunks(
    meta: Meta, answer: Answer, n: int, usage: Mapping[str, Any], *, include_usage: bool, parts: int
) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects of a stream, without `[DONE]`."""

    def chunk(choices: list[dict[str, Any]], chunk_usage: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {
            "id": meta.id,
            "object": "chat.completion.chunk",
            "created": meta.created,
            "model": meta.model,
            "service_tier": "default",
            "system_fingerprint": meta.fingerprint,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = None if chunk_usage is None else dict(chunk_usage)
        return body

    def choice(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

    chunks = []
    for index in range(n):
        chunks += [chunk([choice(index, delta, None)]) for delta in chat_deltas(answer, parts)]
        chunks.append(chunk([choice(index, {}, answer.finish_reason)]))
    if include_usage:
        chunks.append(chunk([], usage))
    return chunks


def text_completion(meta: Meta, answers: Sequence[Answer], usage: Mapping[str, Any]) -> dict[str, Any]:
    """A non-stream legacy `text_completion` object."""
    choices = [
        {"text": a.text, "index": i, "logprobs": None, "finish_reason": a.finish_reason} for i, a in enumerate(answers)
    ]
    return {
        "id": meta.id,
        "object": "text_completion",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        "usage": dict(usage),
    }


def text_chunks(
    meta: Meta, answers: Sequence[Answer], usage: Mapping[str, Any], *, include_usage: bool, parts: int
) -> list[dict[str, Any]]:
    """The streamed legacy completion chunks, without `[DONE]`."""

    def chunk(choices: list[dict[str, Any]], chunk_usage: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {
            "id": meta.id,
            "object": "text_completion",
            "created": meta.created,
            "choices": choices,
            "model": meta.model,
        }
        if include_usage:
            body["usage"] = None if chunk_usage is None else dict(chunk_usage)
        return body

    def choice(index: int, text: str, finish: str | None) -> dict[str, Any]:
        return {"text": text, "index": index, "logprobs": None, "finish_reason": finish}

    chunks = []
    for index, answer in enumerate(answers):
        chunks += [chunk([choice(index, piece, None)]) for piece in split_text(answer.text, parts)]
        chunks.append(chunk([choice(index, "", answer.finish_reason)]))
    if include_usage:
        chunks.append(chunk([], usage))
    return chunks


def embedding_json(vector: list[float], index: int, *, as_base64: bool) -> dict[str, Any]:
    """One `embedding` object; base64 is little-endian float32, as OpenAI sends."""
    data: list[float] | str = vector
    if as_base64:
        data = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return {"object": "embedding", "index": index, "embedding": data}


def _embedding_inputs(value: Any) -> list[tuple[str, int]]:
    """(text the vector derives from, token count) for each input."""
    if isinstance(value, str):
        return [(value, count_tokens(value))]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [(" ".join(map(str, value)), len(value))]
    if isinstance(value, list):
        return [item for v in value for item in _embedding_inputs(v)]
    return []


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class FakeOpenAI(FakeUpstream):
    """A fake OpenAI API on 127.0.0.1; `url` ends in `/v1`.

    api_key: when set, requests need `Authorization: Bearer <api_key>`.
    models: when set, other models get 404 model_not_found; listed by /models.
    stream_chunks: how many pieces streamed content (and arguments) split into.
    embedding_dimensions: vector length unless the request sets `dimensions`.
    echo_prefix: what default content starts with.
    """

    base_path = "/v1"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        stream_chunks: int = 4,
        embedding_dimensions: int = 8,
        echo_prefix: str = "echo: ",
        owned_by: str = "system",
        system_fingerprint: str = "fp_fake0000",
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = tuple(models) if models is not None else None
        self.stream_chunks = stream_chunks
        self.embedding_dimensions = embedding_dimensions
        self.echo_prefix = echo_prefix
        self.owned_by = owned_by
        self.system_fingerprint = system_fingerprint

    # -- hooks -------------------------------------------------------------

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [
            ("POST", "/v1/chat/completions", self._chat),
            ("POST", "/v1/completions", self._completions),
            ("POST", "/v1/embeddings", self._embeddings),
            ("POST", "/v1/responses", self._responses),
            ("GET", "/v1/models", self._list_models),
            ("GET", "/v1/models/{model:.+}", self._get_model),
        ]

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        default, type_, code = STATUS_ERRORS.get(
            status, (f"HTTP {status}", "server_error" if status >= 500 else "invalid_request_error", None)
        )
        return openai_error(status, message or default, type=type_, code=code).body

    def response_headers(self, record: RecordedRequest) -> Mapping[str, str]:
        return {"x-request-id": f"req_{record.seq:032x}", "openai-version": "2020-10-01"}

    # -- endpoints ---------------------------------------------------------

    async def _chat(self, ex: Exchange) -> web.StreamResponse:
        body = self._validated(ex.record, "messages")
        if not isinstance(body["messages"], list):
            raise openai_error(
                400, "Invalid type for 'messages': expected an array of objects.", param="messages", code="invalid_type"
            )
        answer = self._chat_answer(body, ex.reply, ex.record.seq)
        n = _int(body.get("n"), 1)
        usage = _usage(ex.reply, chat_usage(_prompt_tokens(body["messages"]), n * answer.tokens))
        meta = self._meta(body, "chatcmpl", ex.record.seq)
        if not body.get("stream"):
            return await send_json(ex, chat_completion(meta, answer, n, usage))
        chunks = chat_chunks(meta, answer, n, usage, include_usage=_include_usage(body), parts=self._parts(ex.reply))
        return await send_sse(ex, [*map(sse_event, chunks), DONE])

    async def _completions(self, ex: Exchange) -> web.StreamResponse:
        body = self._validated(ex.record, "prompt")
        prompts = _prompts(body["prompt"])
        n = _int(body.get("n"), 1)
        answers = [self._text_answer(p, body, ex.reply) for p in prompts for _ in range(n)]
        usage = _usage(ex.reply, _text_usage(sum(map(count_tokens, prompts)), sum(a.tokens for a in answers)))
        meta = self._meta(body, "cmpl", ex.record.seq)
        if not body.get("stream"):
            return await send_json(ex, text_completion(meta, answers, usage))
        chunks = text_chunks(meta, answers, usage, include_usage=_include_usage(body), parts=self._parts(ex.reply))
        return await send_sse(ex, [*map(sse_event, chunks), DONE])

    async def _responses(self, ex: Exchange) -> web.StreamResponse:
        body = self._validated(ex.record, "input")
        if not body.get("stream"):
            return await send_json(ex, response_object(body, ex.reply, ex.record.seq, self.echo_prefix))
        return await send_sse(
            ex, response_events(body, ex.reply, ex.record.seq, self.echo_prefix, self._parts(ex.reply))
        )

    async def _embeddings(self, ex: Exchange) -> web.StreamResponse:
        body = self._validated(ex.record, "input")
        inputs = _embedding_inputs(body["input"])
        dimensions = _int(body.get("dimensions"), self.embedding_dimensions)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            embedding_json(fake_embedding(text, dimensions), i, as_base64=as_base64)
            for i, (text, _) in enumerate(inputs)
        ]
        tokens = sum(count for _, count in inputs)
        usage = _usage(ex.reply, {"prompt_tokens": tokens, "total_tokens": tokens})
        return await send_json(ex, {"object": "list", "data": data, "model": body["model"], "usage": dict(usage)})

    async def _list_models(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        data = [self._model_json(m) for m in (self.models if self.models is not None else DEFAULT_MODELS)]
        return await send_json(ex, {"object": "list", "data": data})

    async def _get_model(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        model = ex.request.match_info["model"]
        self._check_model(model)
        return await send_json(ex, self._model_json(model))

    # -- request checks ----------------------------------------------------

    def _validated(self, record: RecordedRequest, *required: str) -> dict[str, Any]:
        """The JSON body after OpenAI's checks, in OpenAI's order."""
        self._check_auth(record)
        body = record.json
        if not isinstance(body, dict):
            raise openai_error(400, BAD_JSON_MESSAGE)
        if "model" not in body:
            raise openai_error(400, "you must provide a model parameter")
        for name in required:
            if name not in body:
                raise openai_error(
                    400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        self._check_model(body["model"])
        return body

    def _check_auth(self, record: RecordedRequest) -> None:
        if self.api_key is None:
            return
        header = record.headers.get("Authorization", "")
        if not header:
            raise openai_error(401, NO_KEY_MESSAGE)
        if header != f"Bearer {self.api_key}":
            shown = header.removeprefix("Bearer ")
            shown = shown[:3] + "*" * 8 + shown[-4:] if len(shown) > 8 else "*" * len(shown)
            raise openai_error(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")

    def _check_model(self, model: Any) -> None:
        if self.models is not None and model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            raise openai_error(404, message, code="model_not_found")

    # -- answers -----------------------------------------------------------

    def _chat_answer(self, body: Mapping[str, Any], reply: Reply, seq: int) -> Answer:
        """The scripted answer, or the echo; tool calls only if tools were offered."""
        calls = reply.tool_calls if body.get("tools") or body.get("functions") else ()
        calls = tuple(c if c.id else replace(c, id=f"call_{seq:04d}_{i}") for i, c in enumerate(calls))
        content = reply.content
        if content is None and not calls:
            content = self.echo_prefix + _last_user_text(body["messages"])
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        content, cut = _truncate(content, limit)
        return Answer(content, calls, reply.finish_reason or _finish(bool(calls), cut))

    def _text_answer(self, prompt: str, body: Mapping[str, Any], reply: Reply) -> Answer:
        full = reply.content if reply.content is not None else self.echo_prefix + prompt
        content, cut = _truncate(full, body.get("max_tokens"))
        echoed = prompt if body.get("echo") else ""
        return Answer(content, (), reply.finish_reason or _finish(False, cut), echoed)

    def _meta(self, body: Mapping[str, Any], prefix: str, seq: int) -> Meta:
        return Meta(f"{prefix}-fake{seq:06d}", int(time.time()), str(body["model"]), self.system_fingerprint)

    def _parts(self, reply: Reply) -> int:
        return reply.chunks if reply.chunks is not None else self.stream_chunks

    def _model_json(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": MODEL_CREATED, "owned_by": self.owned_by}


def _usage(reply: Reply, computed: Mapping[str, Any]) -> Mapping[str, Any]:
    """The scripted usage (sent as is, even if empty), else the computed one."""
    return computed if reply.usage is None else reply.usage


def _finish(tool_calls: bool, cut: bool) -> str:
    return "tool_calls" if tool_calls else "length" if cut else "stop"


def _include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def _prompts(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return [value if isinstance(value, str) else str(value)]


def _text_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
