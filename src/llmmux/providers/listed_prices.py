"""OpenAI-format services whose model listing shows each model's price (OpenRouter, Together).

Once started, such a provider reads its listing (within LISTING_TIMEOUT_S, so a slow or dead
service holds the gateway's start-up that long at most) and again every PRICE_REFRESH_S in
the background. `live_price` answers from the last listing read; billing and cost-aware
routing both ask it (pricing.Pricing). A listing that fails is logged and changes nothing:
the prices of the last good one stay, and before the first the models are priced from config
(or unpriced), as any provider's are. Requests never wait on a listing.

A subclass reads its own listing's shape in `read_listing`, giving each model's price in
ModelInfo's per-million fields; a model whose price the listing does not show has None in both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..config.model import ProviderConfig
from ..errors import UpstreamError
from ..pricing import Price
from ..tasks import cancel_and_wait
from ..types import ModelInfo
from .base import ProviderType
from .openai import OpenAIProvider
from .transport import Transport

LISTING_TIMEOUT_S = 5.0
"""How long starting waits for the first listing; without it the models are unpriced until the next."""
PRICE_REFRESH_S = 3600.0

log = logging.getLogger("llmmux")


class ListedPricesProvider(OpenAIProvider):
    """An OpenAI-format provider priced by its service's model listing; subclasses implement `read_listing`."""

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind, transport=transport)
        self.prices: dict[str, Price] = {}
        self._refresher: asyncio.Task[None] | None = None

    async def read_listing(self) -> list[ModelInfo]:
        """Every model the service lists, with its price where the listing shows one."""
        raise NotImplementedError

    async def list_models(self) -> list[ModelInfo]:
        """Every model with its context length and its price per million tokens (kept for `live_price`)."""
        models = await self.read_listing()
        self.prices = {
            m.id: Price(m.input_cost_per_mtok or 0.0, m.output_cost_per_mtok or 0.0)
            for m in models
            if m.input_cost_per_mtok is not None or m.output_cost_per_mtok is not None
        }
        return models

    def live_price(self, model: str) -> Price | None:
        """The price the last model listing showed; billing and cost-aware routing both read it."""
        return self.prices.get(model)

    async def start(self) -> None:
        """Read the listing's prices now (briefly), then keep them fresh in the background."""
        if self._refresher is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._read_prices(), LISTING_TIMEOUT_S)
            self._refresher = asyncio.get_running_loop().create_task(self._refresh(), name=f"llmmux-prices-{self.name}")

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(PRICE_REFRESH_S)
            await self._read_prices()

    async def _read_prices(self) -> None:
        try:
            await self.list_models()
        except UpstreamError as exc:
            log.warning(
                "%s: no live prices (%s); its models keep the prices last listed, else those of the config",
                self.name,
                exc.message,
            )

    async def aclose(self) -> None:
        await cancel_and_wait(self._refresher)
        self._refresher = None
        await super().aclose()
