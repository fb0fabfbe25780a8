"""A fake Gemini API (generativelanguage.googleapis.com/v1beta) speaking its exact wire format.

Serves `models/{model}:generateContent`, `models/{model}:streamGenerateContent` (SSE
with `?alt=sse`, a JSON array without), `models/{model}:batchEmbedContents` (vectors
from `fake_embedding`, `embedding_dimensions` long unless `outputDimensionality` says
otherwise) and `GET models` (paged), with answers derived
from the request as `FakeOpenAI` derives them: content is `echo_prefix` + the last user
text, a token is a whitespace-separated word. Scripted tool calls become `functionCall`
parts when the request declares functions. With `thought_signature` set, the first
function call carries it and a later request that replays that call without it is
refused, as Gemini 3 refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .base import (
    Endpoint,
    Exchange,
    FakeUpstream,
    HttpError,
    RecordedRequest,
    send_json,
    send_sse,
)
from .openai_server import count_tokens, fake_embedding, split_text
from .replay import ReplayMixin

__all__ = ["FakeGemini", "gemini_error"]

GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    400: "Request contains an invalid argument.",
    403: "Method doesn't allow unregistered callers (callers without established identity). Please use API Key "
    "or other form of API consumer identity to call this API.",
    404: "Requested entity was not found.",
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
BAD_KEY_DETAILS = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    },
    {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": "API key not valid. Please pass a valid API key.",
    },
]
DEFAULT_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004")
EMBED_BATCH_LIMIT = 100


def gemini_error(status: int, message: str | None = None, details: Sequence[Mapping[str, Any]] = ()) -> HttpError:
    """An error in Google's `{"error": {"code", "message", "status"}}` shape, ready to raise."""
    error: dict[str, Any] = {
        "code": status,
        "message": message or DEFAULT_MESSAGES.get(status, f"HTTP {status}"),
        "status": GRPC_STATUS.get(status, "UNKNOWN"),
    }
    if details:
        error["details"] = list(details)
    return HttpError(status, {"error": error})


def sse(payload: Any) -> bytes:
    """One event as Gemini frames it: `data: ` and JSON with `": "` separators, ended by CRLF CRLF."""
    return b"data: " + json.dumps(payload, separators=(",", ": ")).encode() + b"\r\n\r\n"


class FakeGemini(ReplayMixin, FakeUpstream):
    """A fake Gemini API on 127.0.0.1; `url` ends in `/v1beta`."""

    base_path = "/v1beta"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        stream_chunks: int = 3,
        echo_prefix: str = "echo: ",
        thought_signature: str | None = None,
        page_size: int = 50,
        embedding_dimensions: int = 8,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models = tuple(models) if models is not None else DEFAULT_MODELS
        self.stream_chunks = stream_chunks
        self.echo_prefix = echo_prefix
        self.thought_signature = thought_signature
        self.page_size = page_size
        self.embedding_dimensions = embedding_dimensions

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [("POST", "/v1beta/models/{call}", self._generate), ("GET", "/v1beta/models", self._list_models)]

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        return gemini_error(status, message).body

    # -- endpoints ---------------------------------------------------------

    async def _generate(self, ex: Exchange) -> web.StreamResponse:
        self._check_key(ex.record)
        model, _, method = ex.request.match_info["call"].partition(":")
        if method not in ("generateContent", "streamGenerateContent", "batchEmbedContents"):
            raise gemini_error(404, f"Method {method!r} not found.")
        if model not in self.models or (method == "batchEmbedContents") != _is_embedder(model):
            raise gemini_error(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for "
                f"{method}. Call ListModels to see the list of available models and their "
                "supported methods.",
            )
        if method == "batchEmbedContents":
            return await send_json(ex, {"embeddings": self._embeddings(model, ex.record.json)})
        body = self._validated(ex.record.json)
        parts, finish = self._answer(body, ex)
        if method == "generateContent":
            return await send_json(ex, self._response(parts, finish, self._usage(body, parts), model, ex.record))
        events = self._stream(body, parts, finish, model, ex)
        if ex.request.query.get("alt") == "sse":
            return await send_sse(ex, [sse(e) for e in events])
        return await send_json(ex, events)

    async def _list_models(self, ex: Exchange) -> web.StreamResponse:
        self._check_key(ex.record)
        size = min(int(ex.request.query.get("pageSize", self.page_size)), self.page_size)
        start = int(ex.request.query.get("pageToken") or 0)
        page: dict[str, Any] = {"models": [self._model_json(m) for m in self.models[start : start + size]]}
        if start + size < len(self.models):
            page["nextPageToken"] = str(start + size)
        return await send_json(ex, page)

    # -- checks, in Gemini's order ----------------------------------------

    def _check_key(self, record: RecordedRequest) -> None:
        if self.api_key is None:
            return
        key = record.headers.get("x-goog-api-key")
        if key is None:
            raise gemini_error(403)
        if key != self.api_key:
            raise gemini_error(400, "API key not valid. Please pass a valid API key.", BAD_KEY_DETAILS)

    def _validated(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise gemini_error(400, "Invalid JSON payload received.")
        contents = body.get("contents")
        if not contents:
            raise gemini_error(400, "* GenerateContentRequest.contents: contents is not specified\n")
        for i, content in enumerate(contents):
            if content.get("role") not in ("user", "model"):
                raise gemini_error(400, f"Please use a valid role: user, model. (contents[{i}])")
            if not content.get("parts"):
                raise gemini_error(
                    400, f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
                )
            self._check_signatures(content)
        return body

    def _check_signatures(self, content: Mapping[str, Any]) -> None:
        calls = [p for p in content["parts"] if "functionCall" in p]
        if self.thought_signature and calls and calls[0].get("thoughtSignature") != self.thought_signature:
            raise gemini_error(
                400,
                "Function call is missing a thought_signature in functionCall parts. This is "
                "required for tools to work correctly, and missing thought_signature may lead "
                "to degraded model performance.",
            )

    def _embeddings(self, model: str, body: Any) -> list[dict[str, Any]]:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not requests:
            raise gemini_error(400, "* BatchEmbedContentsRequest.requests: requests is not specified\n")
        if len(requests) > EMBED_BATCH_LIMIT:
            raise gemini_error(
                400, f"* BatchEmbedContentsRequest.requests: at most {EMBED_BATCH_LIMIT} requests can be in one batch\n"
            )
        embeddings = []
        for i, request in enumerate(requests):
            if request.get("model") != f"models/{model}":
                raise gemini_error(400, f"Model names should match in the batch request and in requests[{i}].")
            texts = [p.get("text") for p in (request.get("content") or {}).get("parts", ())]
            if not texts or not all(isinstance(t, str) for t in texts):
                raise gemini_error(
                    400, f"* BatchEmbedContentsRequest.requests[{i}].content: contents.parts must not be empty.\n"
                )
            size = request.get("outputDimensionality", self.embedding_dimensions)
            embeddings.append({"values": fake_embedding(" ".join(texts), size)})
        return embeddings

    # -- answers -----------------------------------------------------------

    def _answer(self, body: Mapping[str, Any], ex: Exchange) -> tuple[list[dict[str, Any]], str]:
        declared = any(t.get("functionDeclarations") for t in body.get("tools") or ())
        calls = ex.reply.tool_calls if declared else ()
        parts: list[dict[str, Any]] = []
        if ex.reply.content is not None or not calls:
            text = ex.reply.content if ex.reply.content is not None else self.echo_prefix + _last_user_text(body)
            parts.append({"text": text})
        for i, call in enumerate(calls):
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": json.loads(call.arguments)}}
            if i == 0 and self.thought_signature:
                part["thoughtSignature"] = self.thought_signature
            parts.append(part)
        return parts, ex.reply.finish_reason or "STOP"

    def _usage(self, body: Mapping[str, Any], parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        prompt = sum(count_tokens(p.get("text", "")) for c in body["contents"] for p in c["parts"])
        prompt += sum(count_tokens(p.get("text", "")) for p in (body.get("systemInstruction") or {}).get("parts", ()))
        output = sum(
            count_tokens(p["text"]) if "text" in p else count_tokens(json.dumps(p["functionCall"]["args"]))
            for p in parts
        )
        return {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        }

    def _response(
        self,
        parts: list[dict[str, Any]],
        finish: str | None,
        usage: Mapping[str, Any],
        model: str,
        record: RecordedRequest,
        *,
        stream: bool = False,
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = finish
        if stream:
            candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": dict(usage),
            "modelVersion": model,
            "responseId": f"fakeResp{record.seq:06d}",
        }

    def _stream(
        self, body: Mapping[str, Any], parts: list[dict[str, Any]], finish: str, model: str, ex: Exchange
    ) -> list[dict[str, Any]]:
        """Text split in pieces, function calls whole in the last event, usage growing as Gemini's does."""
        pieces = split_text(parts[0]["text"], ex.reply.chunks or self.stream_chunks) if "text" in parts[0] else []
        calls = [p for p in parts if "functionCall" in p]
        slices: list[list[dict[str, Any]]] = [[{"text": piece}] for piece in pieces] + ([calls] if calls else [])
        events, sent = [], []
        for i, chunk in enumerate(slices):
            sent += chunk
            last = i == len(slices) - 1
            usage = ex.reply.usage if (last and ex.reply.usage is not None) else self._usage(body, sent)
            events.append(self._response(chunk, finish if last else None, usage, model, ex.record, stream=True))
        return events

    def _model_json(self, model: str) -> dict[str, Any]:
        methods = (
            ["embedContent", "batchEmbedContents"]
            if _is_embedder(model)
            else ["generateContent", "countTokens", "createCachedContent"]
        )
        return {
            "name": f"models/{model}",
            "version": "001",
            "displayName": model.replace("-", " ").title(),
            "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536,
            "supportedGenerationMethods": methods,
            "temperature": 1,
            "topP": 0.95,
            "topK": 64,
            "maxTemperature": 2,
        }


def _is_embedder(model: str) -> bool:
    return "embedding" in model


def _last_user_text(body: Mapping[str, Any]) -> str:
    users = [c for c in body["contents"] if c.get("role") == "user" and any("text" in p for p in c["parts"])]
    return " ".join(p["text"] for p in users[-1]["parts"] if "text" in p) if users else ""
