"""Together AI (`type: together`): OpenAI's chat completions, priced by Together's own model listing.

Together publishes no price list llmmux could read (see data/prices.yaml), but its API does:
`GET /v1/models` answers a bare JSON array (not OpenAI's `{"data": [...]}`) of models, each
with `id`, `type`, `organization`, `context_length` and `pricing: {input, output, hourly,
base, finetune}`, `input` and `output` in USD per million tokens (Together's OpenAPI spec,
schemas ModelInfoList and Pricing; its SDKs' ModelObject). A model billed otherwise (by the
hour, per image) lists 0 for both and stays priced from config, or unpriced.
"""

from __future__ import annotations

import msgspec

from ..types import ModelInfo
from ..wire import decode_json
from .listed_prices import ListedPricesProvider


class TogetherProvider(ListedPricesProvider):
    """Together's chat completions; billing and cost-aware routing read the prices its listing shows."""

    async def read_listing(self) -> list[ModelInfo]:
        listing = await self.call("GET", self.api_base + "/models", decode=_model_list, what="/models")
        return [_model_info(m, self.name) for m in listing]


class _Pricing(msgspec.Struct):
    input: float | None = None  # USD per million tokens
    output: float | None = None


class _Model(msgspec.Struct):
    id: str
    organization: str | None = None
    context_length: int | None = None
    pricing: _Pricing | None = None


def _model_list(data: bytes) -> list[_Model]:
    return decode_json(data, list[_Model], "/models")


def _model_info(model: _Model, provider: str) -> ModelInfo:
    pricing = model.pricing or _Pricing()
    # 0 is how the listing says "not per token", so only a model with a rate is priced.
    listed = bool(pricing.input or pricing.output)
    return ModelInfo(
        id=model.id,
        provider=provider,
        owned_by=model.organization,
        context_length=model.context_length,
        input_cost_per_mtok=(pricing.input or 0.0) if listed else None,
        output_cost_per_mtok=(pricing.output or 0.0) if listed else None,
    )
