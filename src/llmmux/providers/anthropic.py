"""Anthropic's Messages API (`type: anthropic`): Claude, or any server that speaks it.

Only what differs from an OpenAI upstream lives here: the `x-api-key` header, the
`/v1/messages` path, a required `max_tokens` (`default_max_tokens` in the provider's config
overrides `wire.DEFAULT_MAX_TOKENS`) and a paginated `/v1/models`.

A request from an Anthropic client (Claude Code) reaches the upstream as it was sent: its
body with only `model` rewritten, its query string (`?beta=true`) and its `anthropic-beta` and
`anthropic-version` headers; betas set in the provider's `headers:` are kept alongside the
client's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import msgspec

from ..config.model import ProviderConfig
from ..types import ChatChunk, ChatRequest, ChatResponse, ModelInfo
from ..wire import anthropic as wire
from ..wire import decode_json
from ..wire.anthropic import StreamTranslator
from .base import ProviderType, each_chunk
from .http_provider import ErrorFormat, HTTPProvider, SSECall
from .openai import api_base
from .options import AtLeast, ProviderOptions
from .transport import Transport

BETA_HEADER = "anthropic-beta"
MODELS_PAGE_SIZE = 1000  # the API's maximum `limit`
MAX_MODEL_PAGES = 10


@dataclass(frozen=True, slots=True)
class AnthropicOptions(ProviderOptions):
    default_max_tokens: Annotated[int, AtLeast(1)] = wire.DEFAULT_MAX_TOKENS
    """`max_tokens` when a client leaves it out: Anthropic requires one."""


class AnthropicProvider(HTTPProvider):
    """Calls `POST /v1/messages`; see `llmmux.wire.anthropic` for the translation."""

    errors = ErrorFormat(wire.error_message, wire.classify_error)
    wire = wire.WIRE
    options_type = AnthropicOptions
    options: AnthropicOptions

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind, transport=transport)
        headers = super().session_headers()
        # Betas the operator configured, kept when a client sends its own list.
        self.configured_betas = next((v for k, v in headers.items() if k.lower() == BETA_HEADER), "")
        self.api_base = api_base(self.base_url())
        self.messages_url = self.api_base + "/messages"
        self.default_max_tokens = self.options.default_max_tokens

    def session_headers(self) -> dict[str, str]:
        headers = super().session_headers()
        if self.config.api_key and not any(k.lower() == "x-api-key" for k in headers):
            headers["x-api-key"] = self.config.api_key
        return headers

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = wire.encode_chat_request(request, model, stream=False, default_max_tokens=self.default_max_tokens)
        return await self.call(
            "POST", self._url(request), body, decode=wire.decode_chat_response, headers=self._headers(request)
        )

    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        return each_chunk(self.stream_batches(request, model))

    def stream_batches(self, request: ChatRequest, model: str) -> AsyncIterator[list[ChatChunk]]:
        return self.event_batches(lambda: self._stream_call(request, model))

    def _stream_call(self, request: ChatRequest, model: str) -> SSECall:
        body = wire.encode_chat_request(request, model, stream=True, default_max_tokens=self.default_max_tokens)
        reader = StreamTranslator(self.name)
        return SSECall(self._url(request), body, self._headers(request), reader, "before message_stop")

    def _url(self, request: ChatRequest) -> str:
        # The query means something only to the API the client called (`beta=true`: the beta surface).
        if request.client_query and request.client_wire == wire.WIRE:
            return f"{self.messages_url}?{request.client_query}"
        return self.messages_url

    def _headers(self, request: ChatRequest) -> dict[str, str] | None:
        headers = self.forwarded_headers(request)
        if headers and self.configured_betas and BETA_HEADER in headers:
            betas = [b.strip() for b in f"{self.configured_betas},{headers[BETA_HEADER]}".split(",") if b.strip()]
            headers[BETA_HEADER] = ",".join(dict.fromkeys(betas))
        return headers

    async def list_models(self) -> list[ModelInfo]:
        models: list[ModelInfo] = []
        after = ""
        for _ in range(MAX_MODEL_PAGES):
            page = await self._models_page(after)
            models += [
                ModelInfo(id=m.id, provider=self.name, owned_by="anthropic", context_length=m.max_input_tokens)
                for m in page.data
            ]
            if not page.has_more or not page.last_id:
                break
            after = page.last_id
        return models

    async def _models_page(self, after: str) -> _ModelPage:
        url = f"{self.api_base}/models?limit={MODELS_PAGE_SIZE}" + (f"&after_id={after}" if after else "")
        return await self.call("GET", url, decode=_model_page, what="/models")


class _Model(msgspec.Struct):
    id: str
    max_input_tokens: int | None = None


class _ModelPage(msgspec.Struct):
    data: list[_Model] = []
    has_more: bool = False
    last_id: str | None = None


def _model_page(data: bytes) -> _ModelPage:
    return decode_json(data, _ModelPage, "/models")
