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
from ..config.model import ProviderConfig
from ..errors import UpstreamBadResponse
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)
from ..wire import gemini as wire
from ..wire import gemini_embeddings
from ..wire.gemini import StreamDecoder
from ..wire.sse import SSEParser
from .base import Provider, ProviderType, in_batches
from .transport import Transport, kwargs_for

MODELS_PAGE_SIZE = 1000


class GeminiProvider(Provider):
    """`type: gemini`; models are Gemini ids such as `gemini-2.5-flash` (or `tunedModels/...`)."""

    wire = wire.WIRE
    supported_params = params.ALL - {params.NUM_CTX}

    def __init__(self, config: ProviderConfig, kind: ProviderType) -> None:
        super().__init__(config, kind)
        headers = {**kind.headers, **config.headers}
        if config.api_key:
            headers["x-goog-api-key"] = config.api_key
        self.transport = Transport(
            self.name,
            headers=headers,
            error_message=wire.error_message,
            classify=wire.classify_error,
            **kwargs_for(config),
        )

    def _url(self, model: str, method: str) -> str:
        return f"{self.base_url()}/{wire.model_path(model)}:{method}"

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = wire.encode_request(request)
        data = await self.transport.post(self._url(model, "generateContent"), body, self.forwarded_headers(request))
        try:
            return wire.decode_response(data, model)
        except wire.GeminiError as exc:
            raise wire.stream_error(exc, self.name) from None
        except wire.MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
        decoder = StreamDecoder(model)
        parser = SSEParser()
        async with self.transport.stream(url, wire.encode_request(request), self.forwarded_headers(request)) as chunks:
            async for data in chunks:
                for _, payload in parser.feed(data):
                    for chunk in self._chunks(decoder, payload):
                        yield chunk
        if not decoder.finished:
            # Gemini has no end marker: a stream that stops before a finish reason was cut.
            raise UpstreamBadResponse(f"{self.name} ended the stream before a finish reason", provider=self.name)
        closing = decoder.finish()
        if closing is not None:
            yield closing

    def _chunks(self, decoder: StreamDecoder, payload: bytes) -> list[ChatChunk]:
        try:
            return decoder.feed(payload)
        except wire.GeminiError as exc:
            raise wire.stream_error(exc, self.name) from None
        except wire.MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        """batchEmbedContents, at most 100 inputs a call (or `embedding_batch_size`)."""

        async def batch(inputs: list[str]) -> EmbeddingResponse:
            body = gemini_embeddings.encode_embed_request(request, model, inputs)
            data = await self.transport.post(self._url(model, "batchEmbedContents"), body)
            try:
                return gemini_embeddings.decode_embed_response(data, model, inputs)
            except wire.MalformedReply as exc:
                raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

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
        status, data = await self.transport.get(f"{self.base_url()}/models?{urlencode(query)}")
        if status != 200:
            raise UpstreamBadResponse(
                f"{self.name} /models returned {status}: {wire.error_message(data)}",
                provider=self.name,
                upstream_status=status,
            )
        try:
            return msgspec.json.decode(data, type=_ModelList)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamBadResponse(f"{self.name} /models: {exc}", provider=self.name) from None

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        return await self.transport.get(url, timeout=timeout)

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Model(msgspec.Struct, rename="camel"):
    name: str
    input_token_limit: int | None = None
    supported_generation_methods: list[str] = []


class _ModelList(msgspec.Struct, rename="camel"):
    models: list[_Model] = []
    next_page_token: str | None = None
