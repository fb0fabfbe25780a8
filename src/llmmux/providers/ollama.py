"""Ollama's native API: chat, the model list, and model management (pull, delete).

One class serves a local Ollama (http://127.0.0.1:11434) and Ollama Cloud
(https://ollama.com, `OLLAMA_API_KEY` sent as a Bearer token): the difference is config.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing, contextmanager
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ..config.model import ProviderConfig
from ..errors import UpstreamBadResponse, UpstreamError, UpstreamServerError, classify_status
from ..types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo
from ..wire import ollama as wire
from ..wire.ndjson import LineTooLong, NDJSONSplitter
from ..wire.ollama import Progress
from .base import Provider, ProviderType, in_batches, server_root
from .transport import Transport, kwargs_for

PULL_IDLE_TIMEOUT_S = 300.0
"""A pull may run for hours; it fails only when Ollama is silent this long (it reports progress often)."""
SHOW_TIMEOUT_S = 10.0
SHOW_CONCURRENCY = 4


class OllamaProvider(Provider):
    """An Ollama server, local or Ollama Cloud, through /api/chat, /api/tags, /api/pull and /api/delete.

    >>> provider = create_provider(ProviderConfig(name="local", type="ollama"))  # doctest: +SKIP
    >>> async for progress in provider.pull("llama3.2"):                       # doctest: +SKIP
    ...     print(progress.status, progress.completed, progress.total)
    """

    wire = wire.WIRE

    def __init__(self, config: ProviderConfig, kind: ProviderType) -> None:
        super().__init__(config, kind)
        headers = {**kind.headers, **config.headers}
        if config.api_key:
            headers.setdefault("Authorization", f"Bearer {config.api_key}")
        self.api = api_root(self.base_url())
        self.transport = Transport(self.name, headers=headers, error_message=wire.error_message, **kwargs_for(config))

    # -- chat --

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = wire.encode_chat_request(request, model, stream=False)
        data = await self.transport.post(self.api + "/chat", body, self.forwarded_headers(request))
        with self._reading():
            return wire.decode_chat_response(data)

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        body = wire.encode_chat_request(request, model, stream=True)
        decoder = wire.StreamDecoder()
        async with aclosing(self._lines(self.api + "/chat", body, headers=self.forwarded_headers(request))) as lines:
            async for line in lines:
                with self._reading():
                    chunks = decoder.feed(line)
                for chunk in chunks:
                    yield chunk
                if decoder.done:
                    return
        raise UpstreamBadResponse(f"{self.name} ended the stream before its final (done) line", provider=self.name)

    async def _lines(
        self, url: str, body: bytes, idle_timeout: float | None = None, headers: dict[str, str] | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The NDJSON lines of a streamed reply; a line cut off by the end of the stream is an error."""
        splitter = NDJSONSplitter()
        async with self.transport.stream(url, body, headers, idle_timeout=idle_timeout) as chunks:
            async for data in chunks:
                with self._reading():
                    lines = splitter.feed(data)
                for line in lines:
                    yield line
        if splitter.pending:
            raise UpstreamBadResponse(f"{self.name} broke off in the middle of a line", provider=self.name)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn what the wire module reports about a reply into the gateway's errors."""
        try:
            yield
        except wire.ErrorReply as exc:
            # Ollama failing after its 200 (out of memory, a runner crash): another try may succeed.
            raise UpstreamServerError(f"{self.name} failed: {exc.message}", provider=self.name) from None
        except (wire.MalformedReply, LineTooLong) as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        """/api/embed, in batches where the provider sets `embedding_batch_size`."""

        async def batch(inputs: list[str] | list[list[int]]) -> EmbeddingResponse:
            data = await self.transport.post(self.api + "/embed", wire.encode_embed_request(request, model, inputs))
            with self._reading():
                return wire.decode_embed_response(data)

        return await in_batches(request.inputs, self.embedding_batch_size, batch)

    # -- models --

    async def list_models(self) -> list[ModelInfo]:
        """/api/tags, with each model's context window from /api/show (or the config) where known."""
        data = await self._get_ok(self.api + "/tags")
        with self._reading():
            models = wire.decode_model_list(data, self.name)
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
        status, data = await self.transport.request("POST", self.api + "/show", _json({"model": model}), timeout)
        self._raise_for(status, data, f"/api/show {model}")
        return data

    async def loaded(self) -> list[dict[str, Any]]:
        """/api/ps: the models the server has in memory now, as it reports them."""
        data = await self._get_ok(self.api + "/ps")
        try:
            models = msgspec.json.decode(data).get("models") or []
        except (msgspec.DecodeError, AttributeError) as exc:
            raise UpstreamBadResponse(f"{self.name} /api/ps: {exc}", provider=self.name) from None
        return [m for m in models if isinstance(m, dict)]

    async def version(self) -> str:
        """The server's version, from /api/version."""
        data = await self._get_ok(self.api + "/version")
        try:
            return msgspec.json.decode(data, type=_Version).version
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamBadResponse(f"{self.name} /api/version: {exc}", provider=self.name) from None

    async def pull(self, model: str, *, insecure: bool = False) -> AsyncIterator[Progress]:
        """Download `model`, yielding Ollama's progress lines until its final "success"."""
        request: dict[str, object] = {"model": model, "stream": True}
        if insecure:
            request["insecure"] = True
        lines = self._lines(self.api + "/pull", _json(request), idle_timeout=PULL_IDLE_TIMEOUT_S)
        async with aclosing(lines):
            async for line in lines:
                with self._reading():
                    progress = wire.decode_progress(line)
                yield progress
                if progress.status == "success":
                    return
        raise UpstreamBadResponse(f"{self.name} ended the pull of {model} before it succeeded", provider=self.name)

    async def delete(self, model: str) -> None:
        """Remove `model` and its data; a model the server does not have is a 404 UpstreamClientError."""
        status, data = await self.transport.request("DELETE", self.api + "/delete", _json({"model": model}))
        self._raise_for(status, data, f"/api/delete {model}")

    async def _get_ok(self, url: str) -> bytes:
        status, data = await self.transport.get(url)
        self._raise_for(status, data, urlsplit(url).path)
        return data

    def _raise_for(self, status: int, data: bytes, what: str) -> None:
        if status >= 300:
            message = f"{self.name} {what} returned {status}: {wire.error_message(data)}"
            raise classify_status(status, message, provider=self.name, retry_after=None, body=data)

    def health_url(self) -> str:
        endpoint = self.config.health_endpoint or self.kind.health_endpoint or "/api/tags"
        if endpoint.startswith(("http://", "https://")):
            return endpoint
        return self.api.removesuffix("/api") + "/" + endpoint.lstrip("/")

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        return await self.transport.get(url, timeout=timeout)

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Version(msgspec.Struct):
    version: str


def _json(body: dict[str, object]) -> bytes:
    return msgspec.json.encode(body)


def api_root(base_url: str) -> str:
    """Where /api/* lives, whether the base URL is the server root, its `/api` or its `/v1` compatibility path."""
    root = server_root(base_url)
    return root.removesuffix("/api") + "/api"
