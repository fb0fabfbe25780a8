"""Google's Gemini API (generativelanguage.googleapis.com): generateContent, its SSE stream, batchEmbedContents.

The key travels in `x-goog-api-key` (never in the URL, where it would reach logs);
it comes from the config, `GEMINI_API_KEY` or `GOOGLE_API_KEY`, as Google's SDKs read it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import msgspec

from .. import params
from ..errors import UpstreamBadResponse
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)
from ..wire import decode_json, gemini_embeddings
from ..wire import gemini as wire
from ..wire.gemini import StreamDecoder
from ..wire.sse import SSEParser
from .base import in_batches
from .http_provider import ErrorFormat, HTTPProvider

MODELS_PAGE_SIZE = 1000


class GeminiProvider(HTTPProvider):
    """`type: gemini`; models are Gemini ids such as `gemini-2.5-flash` (or `tunedModels/...`)."""

    errors = ErrorFormat(wire.error_message, wire.classify_error)
    wire = wire.WIRE
    supported_params = params.ALL - {params.NUM_CTX}

    def session_headers(self) -> dict[str, str]:
        headers = super().session_headers()
        if self.config.api_key:
            headers["x-goog-api-key"] = self.config.api_key
        return headers

    def _url(self, model: str, method: str) -> str:
        return f"{self.base_url()}/{wire.model_path(model)}:{method}"

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = wire.encode_request(request)
        return await self.call(
            "POST",
            self._url(model, "generateContent"),
            body,
            decode=lambda data: wire.decode_response(data, model),
            headers=self.forwarded_headers(request),
        )

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        decoder = StreamDecoder(model)
        parser = SSEParser()
        async with self.open_stream(url, wire.encode_request(request), self.forwarded_headers(request)) as chunks:
            async for data in chunks:
                for _, payload in parser.feed(data):
                    for chunk in decoder.feed(payload):
                        yield chunk
        if not decoder.finished:
            # Gemini has no end marker: a stream that stops before a finish reason was cut.
            raise UpstreamBadResponse(f"{self.name} ended the stream before a finish reason", provider=self.name)
        closing = decoder.finish()
        if closing is not None:
            yield closing

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        """batchEmbedContents, at most 100 inputs a call (or `embedding_batch_size`)."""

        async def batch(inputs: list[str]) -> EmbeddingResponse:
            body = gemini_embeddings.encode_embed_request(request, model, inputs)
            return await self.call(
                "POST",
                self._url(model, "batchEmbedContents"),
                body,
                decode=lambda data: gemini_embeddings.decode_embed_response(data, model, inputs),
            )

        texts = gemini_embeddings.text_inputs(request.inputs)  # refused before any call is made
        return await in_batches(texts, self.embedding_batch_size or gemini_embeddings.BATCH_LIMIT, batch)

    async def list_models(self) -> list[ModelInfo]:
        """Every model that can generate content, following the listing's pages."""
        models: list[ModelInfo] = []
        token: str | None = None
        while True:
            page = await self._models_page(token)
            models += [
                ModelInfo(
                    id=m.name.removeprefix("models/"),
                    provider=self.name,
                    owned_by="google",
                    context_length=m.input_token_limit,
                )
                for m in page.models
                if "generateContent" in m.supported_generation_methods
            ]
            token = page.next_page_token
            if not token:
                return models

    async def _models_page(self, token: str | None) -> _ModelList:
        query: dict[str, Any] = {"pageSize": MODELS_PAGE_SIZE}
        if token:
            query["pageToken"] = token
        return await self.call(
            "GET", f"{self.base_url()}/models?{urlencode(query)}", decode=_model_list, what="/models"
        )


class _Model(msgspec.Struct, rename="camel"):
    name: str
    input_token_limit: int | None = None
    supported_generation_methods: list[str] = []


class _ModelList(msgspec.Struct, rename="camel"):
    models: list[_Model] = []
    next_page_token: str | None = None


def _model_list(data: bytes) -> _ModelList:
    return decode_json(data, _ModelList, "/models")
