"""A fake Ollama server for tests, speaking Ollama's native API as docs/api.md shows it.

Built on `base.FakeUpstream` (a real HTTP/1.1 server on 127.0.0.1 in its own thread), so
the shared behaviours script its faults: `status(...)`, `hang(...)`, `drop()`,
`drop_mid_stream(n)` (NDJSON lines instead of SSE events), `malformed(n)`, `trickle(...)`.

* `/api/chat` answers in NDJSON lines unless the body says `"stream": false` (Ollama streams
  by default). Content defaults to `"Echo: " + <last user message>`, split into `chunks`
  lines; a "token" is a whitespace-separated word. `answer(...)` adds what only Ollama
  sends: thinking, and `error_line_after(n)`, the `{"error": ...}` line a failing runner
  ends a stream with.
* `/api/tags`, `/api/show`, `/api/version`, `/api/pull` (streamed progress; an error line
  for a model the registry lacks) and `/api/delete` keep a small model store.
* Errors are `{"error": "..."}` with Ollama's statuses; with `api_key` set every request
  needs `Authorization: Bearer <key>`, as Ollama Cloud does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
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
    abort,
    reply,
    send_json,
)
from .openai_server import fake_embedding

__all__ = [
    "CREATED_AT",
    "DEFAULT_MODELS",
    "PULLABLE",
    "FakeModel",
    "FakeOllama",
    "OllamaReply",
    "answer",
    "as_ollama",
    "error_line_after",
    "send_ndjson",
]

CREATED_AT = "2024-07-22T20:33:28.123648Z"
VERSION = "0.12.6"
DURATIONS = {
    "total_duration": 885095291,
    "load_duration": 3753500,
    "prompt_eval_duration": 328493000,
    "eval_duration": 552222000,
}
RUNNER_ERROR = "an error was encountered while running the model: unexpected EOF"
STATUS_ERRORS = {
    400: "invalid request",
    401: "unauthorized",
    404: "model not found",
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}
"""Default messages of `status(code)` errors."""


@dataclass(frozen=True)
class FakeModel:
    """A model the fake holds (`/api/tags`) or can pull."""

    name: str
    family: str = "llama"
    parameter_size: str = "8.0B"
    quantization: str = "Q4_K_M"
    size: int = 4_920_753_328
    context_length: int = 8192

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.name.encode()).hexdigest()


EMBEDDING_DIMENSIONS = 8

DEFAULT_MODELS = (
    FakeModel("llama3.2:latest"),
    FakeModel("qwen2.5-coder:7b", family="qwen2", parameter_size="7.6B", size=4_683_087_332, context_length=32768),
)
PULLABLE = (FakeModel("mistral:7b", parameter_size="7.2B", size=4_113_301_824),)


@dataclass(frozen=True, kw_only=True)
class OllamaReply(Reply):
    """A reply with what only Ollama sends: thinking text, and an error line ending a stream."""

    thinking: str | None = None
    error_after: int | None = None
    error: str = RUNNER_ERROR


def answer(
    content: str | None = None,
    *,
    thinking: str | None = None,
    tool_calls: Sequence[ToolCall] = (),
    done_reason: str | None = None,
    **reply_kw: Any,
) -> OllamaReply:
    """A well-formed answer; `done_reason` is Ollama's ("stop", "length")."""
    return replace(
        as_ollama(reply(content, tool_calls=tool_calls, finish_reason=done_reason, **reply_kw)), thinking=thinking
    )


def as_ollama(plan: Reply) -> OllamaReply:
    """Any reply as an Ollama one (shared behaviours such as `drop_mid_stream` build plain replies)."""
    if isinstance(plan, OllamaReply):
        return plan
    return OllamaReply(**{f.name: getattr(plan, f.name) for f in fields(Reply)})


def error_line_after(lines: int, error: str = RUNNER_ERROR, **answer_kw: Any) -> OllamaReply:
    """Stream `lines` lines, then `{"error": ...}` as the last line, as Ollama does when a runner fails."""
    return replace(answer(**answer_kw), error_after=lines, error=error)


class FakeOllama(FakeUpstream):
    """A fake Ollama on 127.0.0.1; `url` is the server root, as Ollama's base URL is.

    api_key: when set, requests need `Authorization: Bearer <api_key>` (Ollama Cloud).
    models: what the server holds; chat with another model is Ollama's 404.
    pullable: what `/api/pull` can fetch besides them.
    chunks: how many lines streamed content is split into.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[FakeModel] = DEFAULT_MODELS,
        pullable: Sequence[FakeModel] = PULLABLE,
        chunks: int = 3,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.chunks = chunks
        self.models = {m.name: m for m in models}
        self.registry = {m.name: m for m in (*models, *pullable)}

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [
            ("POST", "/api/chat", self._chat),
            ("GET", "/api/tags", self._tags),
            ("POST", "/api/show", self._show),
            ("GET", "/api/version", self._version),
            ("POST", "/api/embed", self._embed),
            ("POST", "/api/pull", self._pull),
            ("DELETE", "/api/delete", self._delete),
        ]

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        return {"error": message or STATUS_ERRORS.get(status, "something went wrong")}

    def last(self, path: str = "/api/chat") -> RecordedRequest:
        """The latest request to `path`."""
        found = self.requests_to(path)
        if not found:
            raise LookupError(f"{self!r} has received no request to {path}")
        return found[-1]

    # -- endpoints --

    async def _chat(self, ex: Exchange) -> web.StreamResponse:
        body = self._body(ex.record)
        model = self._held(body)
        messages = body.get("messages") or []
        plan = as_ollama(ex.reply)
        content = plan.content if plan.content is not None else "Echo: " + _last_user_text(messages)
        counts = {
            "prompt_eval_count": sum(_words(m.get("content")) for m in messages),
            "eval_count": _words(content),
            **(plan.usage or {}),
        }
        done = {
            "model": model,
            "created_at": CREATED_AT,
            "done_reason": plan.finish_reason or "stop",
            "done": True,
            **_metrics(counts),
        }
        if body.get("stream", True) is False:
            message = _message(content, plan.thinking, plan.tool_calls)
            return await send_json(ex, {"model": model, "created_at": CREATED_AT, "message": message, **done})
        lines: list[Any] = [
            {"model": model, "created_at": CREATED_AT, "message": m, "done": False}
            for m in _stream_messages(content, plan, plan.chunks or self.chunks)
        ]
        lines.append({**done, "message": {"role": "assistant", "content": ""}})
        if plan.error_after is not None:
            lines[plan.error_after :] = [{"error": plan.error}]
        return await send_ndjson(ex, lines)

    async def _tags(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        return await send_json(ex, {"models": [_tag(m) for m in self.models.values()]})

    async def _show(self, ex: Exchange) -> web.StreamResponse:
        model = self.models.get(self._model_field(ex.record))
        if model is None:
            raise HttpError(404, {"error": f"model '{self._model_field(ex.record)}' not found"})
        return await send_json(
            ex,
            {
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {model.name}\n',
                "parameters": 'stop                           "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": _details(model),
                "model_info": {
                    "general.architecture": model.family,
                    "general.parameter_count": 8030261248,
                    f"{model.family}.context_length": model.context_length,
                    f"{model.family}.embedding_length": 4096,
                },
                "capabilities": ["completion", "tools"],
                "modified_at": "2024-09-12T21:17:29.110811Z",
            },
        )

    async def _embed(self, ex: Exchange) -> web.StreamResponse:
        """/api/embed as documented: `input` a string or list, `embeddings` a list of vectors."""
        self._check_auth(ex.record)
        body = self._body(ex.record)
        name = self._model_field(ex.record)
        if name not in self.models:
            raise HttpError(404, {"error": f'model "{name}" not found, try pulling it first'})
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts:
            raise HttpError(400, {"error": "invalid input type"})
        dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
        return await send_json(
            ex,
            {
                "model": name,
                "embeddings": [fake_embedding(str(t), dimensions) for t in texts],
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": sum(len(str(t).split()) for t in texts),
            },
        )

    async def _version(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        return await send_json(ex, {"version": VERSION})

    async def _pull(self, ex: Exchange) -> web.StreamResponse:
        name = self._model_field(ex.record)
        model = self.registry.get(name)
        if self._body(ex.record).get("stream") is False:
            if model is None:
                raise HttpError(500, {"error": "pull model manifest: file does not exist"})
            self.models[name] = model
            return await send_json(ex, {"status": "success"})
        response = await send_ndjson(ex, list(_pull_lines(model)))
        if model is not None:
            self.models[name] = model
        return response

    async def _delete(self, ex: Exchange) -> web.StreamResponse:
        name = self._model_field(ex.record)
        if self.models.pop(name, None) is None:
            raise HttpError(404, {"error": f"model '{name}' not found"})
        return web.Response(status=200)

    async def _not_found(self, ex: Exchange) -> web.StreamResponse:
        # Ollama's router answers unknown paths in plain text, not JSON.
        return web.Response(status=404, text="404 page not found")

    # -- request checks --

    def _check_auth(self, record: RecordedRequest) -> None:
        if self.api_key is not None and record.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise HttpError(401, {"error": "unauthorized"})

    def _body(self, record: RecordedRequest) -> dict[str, Any]:
        self._check_auth(record)
        if not isinstance(record.json, dict):
            raise HttpError(400, {"error": "invalid character 'x' looking for beginning of value"})
        return record.json

    def _model_field(self, record: RecordedRequest) -> str:
        body = self._body(record)
        return str(body.get("model") or body.get("name") or "")

    def _held(self, body: Mapping[str, Any]) -> str:
        model = body.get("model")
        if not model:
            raise HttpError(400, {"error": "model is required"})
        if model not in self.models:
            raise HttpError(404, {"error": f"model '{model}' not found, try pulling it first"})
        return str(model)


async def send_ndjson(ex: Exchange, lines: Sequence[Any]) -> web.StreamResponse:
    """Stream JSON lines (chunked), applying the reply's delivery faults to them as `send_sse` does to events."""
    plan = ex.reply
    data = [json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines]
    if plan.garbage_after is not None:
        data.insert(plan.garbage_after, b'{"model":"broken","message":{\n')
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", **plan.headers})
    response.enable_chunked_encoding()
    await response.prepare(ex.request)
    for index, line in enumerate(data):
        if index == plan.drop_after:
            await abort(ex.request)
        if plan.delay_per_chunk and index:
            await asyncio.sleep(plan.delay_per_chunk)
        if plan.stall_after == index:
            await asyncio.sleep(plan.stall_seconds)
        await response.write(line)
    await response.write_eof()
    return response


# -- wire shapes --


def _message(content: str, thinking: str | None, tool_calls: Sequence[ToolCall]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if tool_calls:
        # Ollama sends arguments as an object and gives calls no id.
        message["tool_calls"] = [
            {"function": {"name": c.name, "arguments": json.loads(c.arguments)}} for c in tool_calls
        ]
    return message


def _stream_messages(content: str, plan: OllamaReply, chunks: int) -> Iterator[dict[str, Any]]:
    if plan.thinking:
        yield {"role": "assistant", "content": "", "thinking": plan.thinking}
    for piece in _split(content, chunks):
        yield {"role": "assistant", "content": piece}
    if plan.tool_calls:
        yield _message("", None, plan.tool_calls)


def _split(text: str, parts: int) -> list[str]:
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _metrics(counts: Mapping[str, int]) -> dict[str, int]:
    return {
        "total_duration": DURATIONS["total_duration"],
        "load_duration": DURATIONS["load_duration"],
        "prompt_eval_count": counts["prompt_eval_count"],
        "prompt_eval_duration": DURATIONS["prompt_eval_duration"],
        "eval_count": counts["eval_count"],
        "eval_duration": DURATIONS["eval_duration"],
    }


def _details(model: FakeModel) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": model.family,
        "families": [model.family],
        "parameter_size": model.parameter_size,
        "quantization_level": model.quantization,
    }


def _tag(model: FakeModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": "2024-09-12T21:17:29.110811-07:00",
        "size": model.size,
        "digest": model.digest[7:],
        "details": _details(model),
    }


def _pull_lines(model: FakeModel | None) -> Iterator[dict[str, Any]]:
    yield {"status": "pulling manifest"}
    if model is None:
        yield {"error": "pull model manifest: file does not exist"}
        return
    for digest, total in ((model.digest, model.size), ("sha256:" + "4f" * 32, 12_403)):
        status = f"pulling {digest[7:19]}"
        yield {"status": status, "digest": digest, "total": total}
        for completed in (total // 3, 2 * total // 3, total):
            yield {"status": status, "digest": digest, "total": total, "completed": completed}
    yield from ({"status": s} for s in ("verifying sha256 digest", "writing manifest", "success"))


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")


def _words(text: Any) -> int:
    return len(str(text or "").split())
