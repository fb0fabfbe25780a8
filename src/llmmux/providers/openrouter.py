"""OpenRouter (`type: openrouter`): OpenAI's wire format plus what OpenRouter adds.

* App attribution: `site_url` goes out as `HTTP-Referer`, `app_name` as `X-OpenRouter-Title`
  (and `X-Title`, which OpenRouter still reads).
* Provider routing: OpenRouter's own preferences object (`order`, `only`, `ignore`,
  `allow_fallbacks`, `sort`, `data_collection`, `max_price`, ...) is the body's `provider`
  field. That name is taken: a client's `provider` pins one of llmmux's providers and never
  leaves the gateway. So OpenRouter's preferences come from the config
  (`provider_preferences:`) and, per request, from `openrouter_provider` (the OpenAI SDK's
  `extra_body`), whose keys override the config's.
* Prompt caching: messages an Anthropic client marked with `cache_control` keep the mark on
  their last text part, which OpenRouter hands to the models that cache by breakpoint.
* Model discovery with prices and context lengths (`/models`), and the key's credit,
  limit and usage (`/key`, and `/credits` for management keys) for `llmmux providers info`.
  Once started, the provider reads the listing's prices and keeps them fresh (see
  listed_prices), so billing and cost-aware routing price its models as OpenRouter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from .. import params
from ..config.model import ProviderConfig
from ..pricing import PER_MILLION
from ..types import ChatRequest, ModelInfo
from ..wire import decode_json
from ..wire import openai as openai_wire
from .base import ProviderType
from .listed_prices import ListedPricesProvider
from .openai import OpenAIOptions
from .transport import Transport

REQUEST_PREFERENCES = "openrouter_provider"


@dataclass(frozen=True, slots=True)
class OpenRouterOptions(OpenAIOptions):
    site_url: str | None = None
    """Sent as `HTTP-Referer`: OpenRouter's app attribution."""
    app_name: str | None = None
    """Sent as `X-OpenRouter-Title` and `X-Title`."""
    provider_preferences: dict[str, Any] | None = None
    """OpenRouter's own provider routing object (`order`, `only`, `sort`, ...), sent as the body's `provider`."""


class OpenRouterProvider(ListedPricesProvider):
    """OpenRouter's chat completions, with its attribution headers and routing preferences."""

    supported_params = params.ALL - {params.NUM_CTX}
    options_type = OpenRouterOptions
    options: OpenRouterOptions
    # OpenRouter passes `cache_control` on text parts to the models that cache by breakpoint (Claude, Gemini).
    cache_marks = True
    mapped_fields = frozenset({"cache_control"})

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind, transport=transport)
        self.preferences: dict[str, Any] = dict(self.options.provider_preferences or {})

    def session_headers(self) -> dict[str, str]:
        headers = super().session_headers()
        site, app = self.options.site_url, self.options.app_name
        if site:
            headers.setdefault("HTTP-Referer", site)
        if app:
            headers.setdefault("X-OpenRouter-Title", app)
            headers.setdefault("X-Title", app)
        return headers

    def encode(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        asked = request.extra.get(REQUEST_PREFERENCES)
        if asked is None and not self.preferences:
            return super().encode(request, model, stream=stream)
        if asked is not None:
            request = _without(request, REQUEST_PREFERENCES)
        preferences = {**self.preferences, **(asked if isinstance(asked, dict) else {})}
        body = super().encode(request, model, stream=stream)
        # `provider` is a gateway field the encoder always strips, so appending it cannot duplicate it.
        return body[:-1] + b',"provider":' + msgspec.json.encode(preferences) + b"}"

    def info(self) -> dict[str, Any]:
        return {
            **super().info(),
            "site_url": self.options.site_url,
            "app_name": self.options.app_name,
            "provider_preferences": self.preferences,
        }

    async def read_listing(self) -> list[ModelInfo]:
        listing = await self.call("GET", self.api_base + "/models", decode=_model_list, what="/models")
        return [_model_info(m, self.name) for m in listing.data]

    async def account(self) -> dict[str, Any]:
        """The key's limit and usage (`/key`), and the account's credits where the key may see them."""
        facts: dict[str, Any] = {}
        status, data = await self._get_any(self.api_base + "/key")
        if status == 200:
            facts.update(_data(data))
        else:
            facts["key"] = f"unavailable ({status}: {openai_wire.error_message(data)})"
        status, data = await self._get_any(self.api_base + "/credits")
        if status == 200:
            credits = _data(data)
            facts["total_credits"], facts["total_usage"] = credits.get("total_credits"), credits.get("total_usage")
            if isinstance(facts["total_credits"], int | float) and isinstance(facts["total_usage"], int | float):
                facts["credits_remaining"] = round(facts["total_credits"] - facts["total_usage"], 6)
        else:
            facts["credits"] = "needs a management key" if status in (401, 403) else f"unavailable ({status})"
        return facts

    async def _get_any(self, url: str) -> tuple[int, bytes]:
        # Either answer is a fact to show: a key without management rights gets a 401 here.
        response = await self.exchange(self.request("GET", url))
        return response.status, response.body


def _without(request: ChatRequest, key: str) -> ChatRequest:
    return msgspec.structs.replace(request, extra={k: v for k, v in request.extra.items() if k != key})


def _data(body: bytes) -> dict[str, Any]:
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return {}
    data = decoded.get("data") if isinstance(decoded, dict) else None
    return data if isinstance(data, dict) else {}


class _Pricing(msgspec.Struct):
    prompt: str | float | None = None  # USD per token, as a decimal string
    completion: str | float | None = None


class _Model(msgspec.Struct):
    id: str
    context_length: int | None = None
    pricing: _Pricing | None = None


class _ModelList(msgspec.Struct):
    data: list[_Model] = []


def _model_list(data: bytes) -> _ModelList:
    return decode_json(data, _ModelList, "/models")


def _per_million(price: str | float | None) -> float | None:
    try:
        return None if price is None else round(float(price) * PER_MILLION, 6)
    except ValueError:
        return None


def _model_info(model: _Model, provider: str) -> ModelInfo:
    pricing = model.pricing or _Pricing()
    return ModelInfo(
        id=model.id,
        provider=provider,
        owned_by=model.id.split("/", 1)[0] if "/" in model.id else None,
        context_length=model.context_length,
        input_cost_per_mtok=_per_million(pricing.prompt),
        output_cost_per_mtok=_per_million(pricing.completion),
    )
