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

import msgspec

from ..config.model import ProviderConfig
from ..errors import UpstreamBadResponse
from ..types import ChatChunk, ChatRequest, ChatResponse, ModelInfo
from ..wire import anthropic as wire
from ..wire.anthropic import StreamTranslator
from ..wire.sse import SSEParser
from .base import Provider, ProviderType
from .openai import api_base
from .transport import Transport, kwargs_for

BETA_HEADER = "anthropic-beta"
MODELS_PAGE_SIZE = 1000  # the API's maximum `limit`
MAX_MODEL_PAGES = 10


class AnthropicProvider(Provider):
    """Calls `POST /v1/messages`; see `llmmux.wire.anthropic` for the translation."""

    wire = wire.WIRE
    options = frozenset({"default_max_tokens"})

    def __init__(self, config: ProviderConfig, kind: ProviderType) -> None:
        super().__init__(config, kind)
        headers = {**kind.headers, **config.headers}
        # Betas the operator configured, kept when a client sends its own list.
        self.configured_betas = next((v for k, v in headers.items() if k.lower() == BETA_HEADER), "")
        if config.api_key and not any(k.lower() == "x-api-key" for k in headers):
            headers["x-api-key"] = config.api_key
        self.api_base = api_base(self.base_url())
        self.messages_url = self.api_base + "/messages"
        setting = config.extra.get("default_max_tokens", wire.DEFAULT_MAX_TOKENS)
        self.default_max_tokens = setting if _positive_int(setting) else wire.DEFAULT_MAX_TOKENS
        self.transport = Transport(
            self.name,
            headers=headers,
            error_message=wire.error_message,
            classify=wire.classify_error,
            **kwargs_for(config),
        )

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        body = wire.encode_chat_request(request, model, stream=False, default_max_tokens=self.default_max_tokens)
        data = await self.transport.post(self._url(request), body, self._headers(request))
        try:
            return wire.decode_chat_response(data)
        except wire.MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        body = wire.encode_chat_request(request, model, stream=True, default_max_tokens=self.default_max_tokens)
        parser = SSEParser()
        translator = StreamTranslator(self.name)
        async with self.transport.stream(self._url(request), body, self._headers(request)) as received:
            async for data in received:
                for name, payload in parser.feed(data):
                    chunk = self._translate(translator, name, payload)
                    if chunk is not None:
                        yield chunk
                    if translator.finished:
                        return
        raise UpstreamBadResponse(f"{self.name} ended the stream before message_stop", provider=self.name)

    def _url(self, request: ChatRequest) -> str:
        # The query means something only to the API the client called (`beta=true`: the beta surface).
        if request.client_query and request.raw_wire == wire.WIRE:
            return f"{self.messages_url}?{request.client_query}"
        return self.messages_url

    def _headers(self, request: ChatRequest) -> dict[str, str] | None:
        headers = self.forwarded_headers(request)
        if headers and self.configured_betas and BETA_HEADER in headers:
            betas = [b.strip() for b in f"{self.configured_betas},{headers[BETA_HEADER]}".split(",") if b.strip()]
            headers[BETA_HEADER] = ",".join(dict.fromkeys(betas))
        return headers

    def _translate(self, translator: StreamTranslator, name: bytes, payload: bytes) -> ChatChunk | None:
        try:
            return translator.feed(name, payload)
        except wire.MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

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
        status, data = await self.transport.get(url)
        if status != 200:
            message = f"{self.name} /models returned {status}: {wire.error_message(data)}"
            raise wire.classify_error(status, message, provider=self.name, retry_after=None, body=data)
        try:
            return msgspec.json.decode(data, type=_ModelPage)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamBadResponse(f"{self.name} /models: {exc}", provider=self.name) from None

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        return await self.transport.get(url, timeout=timeout)

    def validate_config(self) -> list[str]:
        problems = super().validate_config()
        setting = self.config.extra.get("default_max_tokens")
        if setting is not None and not _positive_int(setting):
            problems.append(f"default_max_tokens must be a positive integer, got {setting!r}")
        return problems

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Model(msgspec.Struct):
    id: str
    max_input_tokens: int | None = None


class _ModelPage(msgspec.Struct):
    data: list[_Model] = []
    has_more: bool = False
    last_id: str | None = None


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
