"""`type: llama_cpp`: GGUF models run inside llmmux, loaded on demand into a model pool.

The engine (xllamacpp, else llama-cpp-python) takes and returns OpenAI chat and
embeddings JSON, so this provider only picks the model, leases it from the pool and
translates with `wire/openai.py` (closing the few gaps in `local/compat.py`). Generation
runs on the model's own threads; the event loop only forwards payloads. Settings: see
`llmmux.local.catalog`.

A model is loaded for chat or for embeddings (`ModelSpec.embeds`); asking one for the
other is a 400 (`NotSupported`, so a route may fall back to a model that can). Every chat
model takes tools: where its chat template cannot render them, the loader wraps it in
llmmux's built-in tool template (`local/engines/tool_prompt.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import msgspec

from ..cache.entry import fold
from ..config.fields import FieldReader
from ..config.model import ProviderConfig, TypedOptions
from ..config.units import format_size, parse_duration
from ..errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    NotSupported,
    UpstreamBadResponse,
    UpstreamError,
)
from ..local import compat
from ..local.bridge import ThreadStream
from ..local.catalog import LocalSettings, read_settings, settings_from_config
from ..local.engines import EngineUnavailable
from ..local.errors import stopping
from ..local.loader import GGUFLoader, LoadedModel
from ..local.pool import ModelLease, ModelPool, ModelStatus
from ..local.sampling import with_sampling
from ..routing.first_token import report_progress
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)
from ..wire import MalformedReply
from ..wire import openai as wire
from ..wire.openai_errors import classify_error
from .base import HealthResult, Provider, ProviderType, in_batches
from .llama_server import PROGRESS_MARKER, asking_for_progress

log = logging.getLogger("llmmux.local")

# llama.cpp reports an embeddings input longer than the context as a server error.
_INPUT_TOO_LONG = "too large to process"


class LlamaCppProvider(Provider):
    """In-process GGUF models behind an LRU pool.

    >>> router = Router.from_config({"providers": {"local": {                # doctest: +SKIP
    ...     "type": "llama_cpp", "models": [{"name": "qwen", "path": "qwen.gguf"}]}}})
    >>> await router.chat(model="qwen", messages=[{"role": "user", "content": "hi"}])
    """

    wire = wire.WIRE
    engine: ClassVar[str | None] = None
    """Set where the provider type fixes the engine (`type: mlx`); else the entry's `engine:`."""

    def __init__(self, config: ProviderConfig, kind: ProviderType) -> None:
        super().__init__(config, kind)
        # Read once by validation (`read_options`); a config built in code is read here.
        given = config.options
        self.settings = given if isinstance(given, LocalSettings) else settings_from_config(config, self.engine)
        self.loader = GGUFLoader(self.settings, self.name)
        self.pool: ModelPool[LoadedModel] = ModelPool(
            self.loader,
            self.settings.limits,
            provider=self.name,
            max_queue=self.settings.max_queue,
            queue_timeout=self.settings.queue_timeout,
        )
        self._background: set[asyncio.Task[None]] = set()
        self._generating: set[ThreadStream] = set()
        self._stopping = False

    @classmethod
    def read_options(cls, config: ProviderConfig, reader: FieldReader, path: str) -> TypedOptions:
        """The pool, engine and model settings of the entry (`llmmux.local.catalog`), once."""
        errors = len(reader.problems.errors)
        settings = read_settings(config, reader, path, cls.engine)
        if not settings.models and len(reader.problems.errors) == errors:
            files = "MLX model folders or .gguf files" if cls.engine == "mlx" else ".gguf files"
            reader.error(
                f"{path}.models", f"no models: list them with a path, or set models_dir to a folder of {files}"
            )
        return settings

    # -- requests --

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        """A whole reply, generated as a stream and added up: llama.cpp checks whether to stop
        only between a stream's chunks, so a client that leaves (the request is cancelled)
        frees the slot at the next token instead of when the reply nobody reads is whole.
        Log probabilities come only in a whole reply (folding chunks would drop them)."""
        whole = bool(request.extra.get("logprobs"))
        lease, stream = await self._open(request, model, stream=not whole)
        payloads: list[bytes] = []
        try:
            async for payload in stream:
                if PROGRESS_MARKER not in payload:
                    payloads.append(payload)
        finally:
            stream.cancel()  # a no-op when finished; stops generation when the client left
            lease.release()
        if not payloads:
            raise UpstreamBadResponse(f"{self.name}: the engine returned nothing", provider=self.name)
        if whole:
            return self._response(payloads[-1])
        return fold([self._chunk(payload) for payload in payloads])

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        lease, stream = await self._open(request, model, stream=True)
        try:
            async for payload in stream:
                if PROGRESS_MARKER in payload:  # the prompt is being read: nothing for the client yet
                    report_progress()
                    continue
                yield self._chunk(payload)
        finally:
            stream.cancel()  # a no-op when finished; stops generation when the client left
            lease.release()

    async def _open(
        self, request: ChatRequest, model: str, *, stream: bool
    ) -> tuple[ModelLease[LoadedModel], ThreadStream]:
        """Lease the model and start the request on its thread; the lease is held until the thread ends."""
        if await self._embeds(model):
            raise NotSupported(
                f"{self.name}: model '{model}' is an embedding model: it serves embeddings, not chat",
                provider=self.name,
            )
        request = compat.force_named_tool(request)
        request = compat.cap_output(request, self.settings.models[model].max_output_tokens)
        lease = await self.pool.acquire(model, request_keep_alive(request))
        try:
            if self._stopping:  # it waited for the model while the server began to stop
                raise stopping(self.name)
            body = with_sampling(
                self._body(request, model, stream=stream), request, self.settings.models[model].sampling
            )
            opened = await lease.model.open(body)
        except BaseException:
            lease.release()
            raise
        lease.hold(opened.done)
        self._generating.add(opened)
        opened.done.add_done_callback(lambda _: self._generating.discard(opened))
        return lease, opened

    def stop_generating(self) -> None:
        self._stopping = True
        for generation in list(self._generating):
            generation.cancel(stopping(self.name))

    @staticmethod
    def _body(request: ChatRequest, model: str, *, stream: bool) -> bytes:
        body = wire.encode_chat_request(request, model, stream=stream, stream_usage=True)
        # llama.cpp then reports each batch of the prompt it has read (`prompt_progress`),
        # which keeps a long prompt's first-token wait alive; other engines ignore the field.
        return asking_for_progress(body) if stream else body

    def _response(self, payload: bytes) -> ChatResponse:
        self._raise_if_error(payload)
        try:
            return wire.decode_chat_response(payload)
        except MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

    def _chunk(self, payload: bytes) -> ChatChunk:
        self._raise_if_error(payload)
        try:
            return wire.decode_chunk(payload)
        except MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        """Embed with a model loaded for embeddings, in batches where `embedding_batch_size` says."""
        if await self._embeds(model) is False:
            raise NotSupported(
                f"{self.name}: model '{model}' is a chat model; set `embedding: true` on it to serve "
                "embeddings (it then serves embeddings only)",
                provider=self.name,
            )
        keep_alive = request_keep_alive(request)

        async def batch(inputs: list[str] | list[list[int]]) -> EmbeddingResponse:
            lease = await self.pool.acquire(model, keep_alive)
            try:
                stream = await lease.model.open(wire.encode_embedding_request(request, model, inputs), embed=True)
                lease.hold(stream.done)
                payloads = [payload async for payload in stream]
            finally:
                lease.release()
            return self._embeddings(payloads, request, model)

        return await in_batches(request.inputs, self.embedding_batch_size, batch)

    def _embeddings(self, payloads: list[bytes], request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        if not payloads:
            raise UpstreamBadResponse(f"{self.name}: the engine returned nothing", provider=self.name)
        self._raise_if_error(payloads[-1])
        try:
            response = wire.decode_embedding_response(payloads[-1])
        except MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None
        vectors = compat.fit_dimensions(response.vectors, request.dimensions, model)
        return msgspec.structs.replace(response, model=model, vectors=vectors)  # not the file's path

    async def _embeds(self, model: str) -> bool | None:
        """Whether `model` is loaded for embeddings; None when it is unknown or its file
        unreadable (the pool then says why, and records it)."""
        spec = self.settings.models.get(model)
        if spec is None:
            return None
        if spec.embedding:
            return True
        try:
            info = self.loader.cached_info(model) or await self.loader.info(model)
        except UpstreamError:
            return None
        return spec.embeds(info)

    def _raise_if_error(self, payload: bytes) -> None:
        if not payload.startswith(b'{"error"'):
            return
        try:
            error = msgspec.json.decode(payload, type=_ErrorBody).error
        except (msgspec.DecodeError, msgspec.ValidationError):
            error = _Error(message=wire.error_message(payload))
        message = f"{self.name}: {error.message}"
        if _INPUT_TOO_LONG in error.message:  # no body: llama.cpp's says "server_error", code 500
            raise ContextLengthExceeded(
                f"{message} (the model's n_batch, by default its n_ctx)", provider=self.name, upstream_status=400
            )
        raise classify_error(error.code or 500, message, provider=self.name, retry_after=None, body=payload)

    # -- models and status --

    async def list_models(self) -> list[ModelInfo]:
        models = []
        for name, spec in self.settings.models.items():
            try:
                info = await self.loader.info(name)
            except UpstreamError:
                models.append(ModelInfo(id=name, provider=self.name, owned_by=self.name))
                continue
            models.append(
                ModelInfo(
                    id=name,
                    provider=self.name,
                    owned_by=self.name,
                    context_length=spec.context_size(info),
                    size=format_size(info.size),
                    specialty="embedding" if spec.embeds(info) else None,
                )
            )
        return models

    async def health(self, timeout: float = 5.0) -> HealthResult:
        started = time.perf_counter()
        try:
            engine = self.loader.engine()
        except EngineUnavailable as exc:
            return HealthResult(False, _ms(started), None, str(exc), self.base_url())
        return HealthResult(True, _ms(started), None, f"engine {engine.name}", self.base_url())

    def base_url(self) -> str:
        return f"inprocess://{self.name}"

    @property
    def is_local(self) -> bool:
        return True

    def validate_config(self) -> list[str]:
        problems = []
        try:
            self.loader.engine()
        except EngineUnavailable as exc:
            problems.append(str(exc))
        if not self.settings.models:
            problems.append("no models: list them under models: with a path, or set models_dir")
        return problems

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "engine": self.settings.engine,
            "models_dir": str(self.settings.models_dir or ""),
            "max_loaded_models": self.settings.limits.max_loaded_models,
            "max_memory": self.settings.limits.max_memory,
        }

    # -- LocalRuntime --

    def runtime_status(self) -> list[dict[str, Any]]:
        rows = []
        for status in self.pool.status():
            loaded = self.pool.model(status.name)
            spec, info = self.settings.models[status.name], self.loader.cached_info(status.name)
            rows.append(
                {
                    **_status_dict(status),
                    "provider": self.name,
                    "kind": "in-process",
                    "path": spec.path,
                    "engine": self.settings.engine if loaded is None else _engine_name(loaded),
                    "slots": loaded.slots.size if loaded else None,
                    "slots_busy": loaded.slots.active if loaded else 0,
                    "family": info.architecture if info else None,
                    "parameter_size": info.parameter_size if info else None,
                    "quantization": info.quantization if info else None,
                    "context_length": spec.context_size(info) if info else None,
                }
            )
        return rows

    def serves(self, model: str) -> bool:
        return model in self.settings.models

    async def load_model(self, model: str, keep_alive: float | None = None) -> None:
        await self.pool.load(model, keep_alive)

    async def unload_model(self, model: str) -> bool:
        if not self.serves(model):
            raise ModelNotFound(model)
        return await self.pool.unload(model)

    # -- lifecycle --

    async def start(self) -> None:
        """Preload the configured models in the background; a failure is logged, not fatal."""
        for name in self.settings.preload:
            task = asyncio.ensure_future(self._preload(name))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _preload(self, name: str) -> None:
        try:
            await self.pool.load(name)
        except UpstreamError as exc:
            log.error("%s: preloading %s failed: %s", self.name, name, exc.message)

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.pool.aclose()
        self.loader.close()


class _Error(msgspec.Struct):
    message: str = ""
    code: int | None = None


class _ErrorBody(msgspec.Struct):
    error: _Error


def request_keep_alive(request: ChatRequest | EmbeddingRequest) -> float | None:
    """The request's own `keep_alive` (Ollama's field; an extra body field on other APIs)."""
    value = request.extra.get("keep_alive")
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="keep_alive") from None


def _engine_name(loaded: LoadedModel) -> str:
    return loaded.engine_name or type(loaded.engine).__module__.rsplit(".", 1)[-1]


def _status_dict(status: ModelStatus) -> dict[str, Any]:
    return {
        "model": status.name,
        "state": status.state,
        "memory": status.memory,
        "in_flight": status.in_flight,
        "queued": status.queued,
        "keep_alive": None if status.keep_alive == float("inf") else status.keep_alive,
        "loaded_at": status.loaded_at,
        "last_used": status.last_used,
        "expires_at": status.expires_at,
        "last_error": status.last_error,
    }


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
