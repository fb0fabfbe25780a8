"""Any upstream that speaks OpenAI's chat completions API: OpenAI itself and the compatible servers.

With `completions: native` in its config, a provider also serves the legacy completions API
from its own `/v1/completions` (vLLM, llama.cpp, OpenAI's instruct models): a request that
arrived there (`client_wire` "openai_completions") is forwarded as the client sent it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import ClassVar, Literal
from urllib.parse import urlsplit

import msgspec

from .. import params
from ..config.model import ProviderConfig
from ..routing.first_token import report_progress
from ..types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo
from ..wire import completions, decode_json
from ..wire import openai as wire
from ..wire.openai_errors import classify_error
from ..wire.responses import upstream as responses
from .base import ProviderType, each_chunk, in_batches
from .http_provider import ErrorFormat, HTTPProvider, SSECall
from .options import ProviderOptions
from .transport import Transport

REASONING_EFFORT = "reasoning_effort"


@dataclass(frozen=True, slots=True)
class OpenAIOptions(ProviderOptions):
    stream_usage: bool = True
    """Ask a stream for its usage (`stream_options.include_usage`); some servers refuse the field."""
    completions: Literal["chat", "native"] = "chat"
    """How /v1/completions is served: mapped onto chat, or by the server's own endpoint."""
    responses: Literal["chat", "native"] | None = None
    """How /v1/responses is served: mapped onto chat, or by its own endpoint (None: `type: openai` natively)."""


class OpenAIProvider(HTTPProvider):
    """Chat completions over OpenAI's wire format; subclasses change URLs, headers or the body."""

    errors = ErrorFormat(wire.error_message, classify_error)
    wire = wire.WIRE
    options_type = OpenAIOptions
    options: OpenAIOptions
    cache_marks = False  # whether the service reads Anthropic-style `cache_control` marks on content parts
    progress_marker: ClassVar[bytes | None] = None
    """Chunks holding this are the server's progress, not output (see `llama_server`)."""

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind, transport=transport)
        self.api_base = api_base(self.base_url(), kind.root_api_path)
        self.chat_url = self.api_base + "/chat/completions"
        self.stream_usage = self.options.stream_usage
        self.native_completions = self.options.completions == "native"
        self.native_responses = (self.options.responses or ("native" if kind.name == "openai" else "chat")) == "native"
        if self.native_responses:
            self.supported_params = self.supported_params | {params.HOSTED_TOOLS}
        self.reasoning_models = re.compile(kind.reasoning_models) if kind.reasoning_models else None

    # -- what subclasses change --

    def session_headers(self) -> dict[str, str]:
        """Headers on every request: the row's, the config's, and the key as a bearer token."""
        headers = super().session_headers()
        if self.config.api_key:
            headers.setdefault("Authorization", f"Bearer {self.config.api_key}")
        return headers

    def url_for(self, model: str) -> str:
        """Where chat requests for upstream model `model` go."""
        return self.chat_url

    def encode(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        """The chat request body for upstream model `model`."""
        if self.dropped_for(request, model):
            extra = {k: v for k, v in request.extra.items() if k != REASONING_EFFORT}
            request = msgspec.structs.replace(request, extra=extra)
        return wire.encode_chat_request(
            request, model, stream=stream, stream_usage=self.stream_usage, cache_marks=self.cache_marks
        )

    def dropped_for(self, request: ChatRequest, model: str) -> list[str]:
        # Another API's thinking request, translated to `reasoning_effort`, would make a model
        # without reasoning refuse the whole request; the client's own OpenAI field goes as sent.
        translated = request.client_wire not in (None, wire.WIRE) and REASONING_EFFORT in request.extra
        if translated and self.reasoning_models is not None and not self.reasoning_models.match(model):
            return [REASONING_EFFORT]
        return []

    # -- the interface --

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        if self._native_response(request):
            url, decode = self.api_base + "/responses", responses.decode_response
            body = responses.encode_request(request, model, stream=False)
        elif self._native_completion(request):
            url, decode = self.api_base + "/completions", completions.decode_response
            body = completions.encode_request(request, model, stream=False)
        else:
            url, decode = self.url_for(model), wire.decode_chat_response
            body = self.encode(request, model, stream=False)
        return await self.call("POST", url, body, decode=decode, headers=self.forwarded_headers(request))

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        return each_chunk(self.stream_batches(request, model))

    def stream_batches(self, request: ChatRequest, model: str) -> AsyncIterator[list[ChatChunk]]:
        return self.event_batches(lambda: self._stream_call(request, model))

    def _stream_call(self, request: ChatRequest, model: str) -> SSECall:
        if self._native_response(request):
            body = responses.encode_request(request, model, stream=True)
            return SSECall(
                self.api_base + "/responses", body, None, responses.StreamTranslator(), "before response.completed"
            )
        if self._native_completion(request):
            url, decode = self.api_base + "/completions", completions.decode_chunk
            body = completions.encode_request(request, model, stream=True)
        else:
            url, decode = self.url_for(model), wire.decode_chunk
            body = self.encode(request, model, stream=True)
        reader = _ChunkReader(decode, self.progress_marker)
        return SSECall(url, body, self.forwarded_headers(request), reader, "without [DONE]")

    def _native_completion(self, request: ChatRequest) -> bool:
        return self.native_completions and request.client_wire == completions.WIRE

    def _native_response(self, request: ChatRequest) -> bool:
        return self.native_responses and request.client_wire == wire.RESPONSES_WIRE and request.passthrough is not None

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        async def batch(inputs: list[str] | list[list[int]]) -> EmbeddingResponse:
            body = wire.encode_embedding_request(request, model, inputs)
            return await self.call("POST", self.api_base + "/embeddings", body, decode=wire.decode_embedding_response)

        return await in_batches(request.inputs, self.embedding_batch_size, batch)

    async def list_models(self) -> list[ModelInfo]:
        listing = await self.call("GET", self.api_base + "/models", decode=_model_list, what="/models")
        return [
            ModelInfo(id=m.id, provider=self.name, owned_by=m.owned_by, context_length=m.context_length)
            for m in listing.data
        ]


class _ChunkReader:
    """A chat (or completions) stream's events as chunks: `[DONE]` ends it; a local server's
    progress events (`progress_marker`) restart the first-token wait and make no chunk."""

    __slots__ = ("_decode", "_marker", "finished")

    def __init__(self, decode: Callable[[bytes], ChatChunk], marker: bytes | None) -> None:
        self._decode, self._marker = decode, marker
        self.finished = False

    def feed(self, name: bytes, data: bytes) -> ChatChunk | None:
        if data == b"[DONE]":
            self.finished = True
            return None
        if self._marker is not None and self._marker in data:
            report_progress()
            return None
        return self._decode(data)


class _Model(msgspec.Struct):
    id: str
    owned_by: str | None = None
    context_length: int | None = None


class _ModelList(msgspec.Struct):
    data: list[_Model] = []


def _model_list(data: bytes) -> _ModelList:
    return decode_json(data, _ModelList, "/models")


def api_base(base_url: str, root_path: str = "/v1") -> str:
    """A server root gets `root_path` (`/v1`); a base URL that already has a path is used as written."""
    path = urlsplit(base_url).path.strip("/")
    return base_url if path else base_url + root_path
