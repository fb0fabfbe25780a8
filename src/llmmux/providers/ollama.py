"""Ollama's native API: chat, the model list, and model management (pull, delete).

One class serves a local Ollama (http://127.0.0.1:11434) and Ollama Cloud
(https://ollama.com, `OLLAMA_API_KEY` sent as a Bearer token): the difference is config.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import msgspec

from ..config.model import ProviderConfig
from ..errors import UpstreamBadResponse, UpstreamError
from ..types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo
from ..wire import decode_json
from ..wire import ollama as wire
from ..wire.ndjson import NDJSONSplitter
from ..wire.ollama import Progress
from .base import ProviderType, in_batches, server_root
from .http_provider import HTTPProvider
from .transport import Transport

PULL_IDLE_TIMEOUT_S = 300.0
"""A pull may run for hours; it fails only when Ollama is silent this long (it reports progress often)."""
SHOW_TIMEOUT_S = 10.0
SHOW_CONCURRENCY = 4


class OllamaProvider(HTTPProvider):
    """An Ollama server, local or Ollama Cloud, through /api/chat, /api/tags, /api/pull and /api/delete.

    >>> provider = create_provider(ProviderConfig(name="local", type="ollama"))  # doctest: +SKIP
    >>> async for progress in provider.pull("llama3.2"):                       # doctest: +SKIP
    ...     print(progress.status, progress.completed, progress.total)
    """

    wire = wire.WIRE

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind, transport=transport)
        self.api = api_root(self.base_url())

    def session_headers(self) -> dict[str, str]:
        headers = super().session_headers()
        if self.config.api_key:
            headers.setdefault("Authorization", f"Bearer {self.config.api_key}")
        return headers

    # -- chat --

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = wire.encode_chat_request(request, model, stream=False)
        headers = self.forwarded_headers(request)
        return await self.call("POST", self.api + "/chat", body, decode=wire.decode_chat_response, headers=headers)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        body = wire.encode_chat_request(request, model, stream=True)
        decoder = wire.StreamDecoder()
        async with self.open_stream(self.api + "/chat", body, self.forwarded_headers(request)) as received:
            async with aclosing(self._lines(received)) as lines:
                async for line in lines:
                    for chunk in decoder.feed(line):
                        yield chunk
                    if decoder.done:
                        return
        raise UpstreamBadResponse(f"{self.name} ended the stream before its final (done) line", provider=self.name)

    async def _lines(self, chunks: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        """The NDJSON lines of a streamed reply; a line cut off by the end of the stream is an error."""
        splitter = NDJSONSplitter()
        async for data in chunks:
            for line in splitter.feed(data):
                yield line
        if splitter.pending:
            raise UpstreamBadResponse(f"{self.name} broke off in the middle of a line", provider=self.name)

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        """/api/embed, in batches where the provider sets `embedding_batch_size`."""

        async def batch(inputs: list[str] | list[list[int]]) -> EmbeddingResponse:
            body = wire.encode_embed_request(request, model, inputs)
            return await self.call("POST", self.api + "/embed", body, decode=wire.decode_embed_response)

        return await in_batches(request.inputs, self.embedding_batch_size, batch)

    # -- models --

    async def list_models(self) -> list[ModelInfo]:
        """/api/tags, with each model's context window from /api/show (or the config) where known."""
        models = await self.call(
            "GET", self.api + "/tags", decode=lambda data: wire.decode_model_list(data, self.name), what="/api/tags"
        )
        configured = {m.name: m.context_length for m in self.config.models}
        limit = asyncio.Semaphore(SHOW_CONCURRENCY)

        async def complete_info(info: ModelInfo) -> ModelInfo:
            if info.context_length is None:
                async with limit:
                    info.context_length = await self._context_length(info.id) or configured.get(info.id)
            return info

        return list(await asyncio.gather(*(complete_info(m) for m in models)))

    async def _context_length(self, model: str) -> int | None:
        try:
            return wire.context_length(await self.show(model, timeout=SHOW_TIMEOUT_S))
        except UpstreamError:
            return None  # a model's details are a nicety: the listing stands without them

    async def show(self, model: str, *, timeout: float | None = None) -> bytes:
        """/api/show for one model: details, parameters, template and `model_info`."""
        return await self.call(
            "POST", self.api + "/show", _json({"model": model}), timeout=timeout, what=f"/api/show {model}"
        )

    async def running(self) -> list[dict[str, Any]]:
        """/api/ps: the models the server holds in memory, as it describes them."""
        return (await self.call("GET", self.api + "/ps", decode=_running, what="/api/ps")).models

    async def version(self) -> str:
        """The server's version, from /api/version."""
        reply = await self.call("GET", self.api + "/version", decode=_version, what="/api/version")
        return reply.version

    async def pull(self, model: str, *, insecure: bool = False) -> AsyncIterator[Progress]:
        """Download `model`, yielding Ollama's progress lines until its final "success"."""
        request: dict[str, object] = {"model": model, "stream": True}
        if insecure:
            request["insecure"] = True
        async with self.open_stream(self.api + "/pull", _json(request), idle_timeout=PULL_IDLE_TIMEOUT_S) as received:
            async with aclosing(self._lines(received)) as lines:
                async for line in lines:
                    progress = wire.decode_progress(line)
                    yield progress
                    if progress.status == "success":
                        return
        raise UpstreamBadResponse(f"{self.name} ended the pull of {model} before it succeeded", provider=self.name)

    async def delete(self, model: str) -> None:
        """Remove `model` and its data; a model the server does not have is a 404 UpstreamClientError."""
        await self.call("DELETE", self.api + "/delete", _json({"model": model}), what=f"/api/delete {model}")

    def health_url(self) -> str:
        endpoint = self.config.health_endpoint or self.kind.health_endpoint or "/api/tags"
        if endpoint.startswith(("http://", "https://")):
            return endpoint
        return self.api.removesuffix("/api") + "/" + endpoint.lstrip("/")


class _Version(msgspec.Struct):
    version: str


class _Running(msgspec.Struct):
    models: list[dict[str, Any]] = []


def _version(data: bytes) -> _Version:
    return decode_json(data, _Version, "/api/version")


def _running(data: bytes) -> _Running:
    return decode_json(data, _Running, "/api/ps")


def _json(body: dict[str, object]) -> bytes:
    return msgspec.json.encode(body)


def api_root(base_url: str) -> str:
    """Where /api/* lives, whether the base URL is the server root, its `/api` or its `/v1` compatibility path."""
    root = server_root(base_url)
    return root.removesuffix("/api") + "/api"
