"""What a request cost: prices per model, and the arithmetic from reported usage.

A price is USD per million tokens. Where it comes from, first match wins:

1. `pricing:` on the model's entry in providers.yaml
   (`- {name: gpt-4o, pricing: {input: 2.5, cached_input: 1.25, output: 10}}`);
2. the price the backend publishes for it (OpenRouter's model listing);
3. the built-in dated table `data/prices.yaml`, by provider type and upstream model name;
4. a self-hosted provider on this machine or the LAN: free;
5. nothing: unknown. Billing records 0 and `Pricing.unpriced` names the model so the
   operator is warned; `cost_optimized` routing ranks it after every priced candidate.

One catalog (`Pricing`) answers both billing and routing, so they never disagree.

Usage follows OpenAI's counting (types.Usage): `prompt_tokens` includes cached reads and
cache writes, `completion_tokens` includes reasoning tokens. Each token is billed once,
at the rate of its category:

    cost = (prompt - cached - cache_write) * input + cached * cached_input
         + cache_write * cache_write + (completion - reasoning) * output + reasoning * reasoning

where a missing cached_input or cache_write rate is the input rate, and a missing
reasoning rate is the output rate (reasoning billed as output, as OpenAI and Anthropic do).

>>> Price(input=2.5, output=10, cached_input=1.25).cost(Usage(prompt_tokens=1000, cached_tokens=400, completion_tokens=100))
0.003
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol, TypeAlias

import yaml

from .config.model import Config, ProviderConfig
from .config.problems import Problems
from .types import Usage

PER_MILLION = 1_000_000
PRICE_KEYS = ("input", "output", "cached_input", "cache_write", "reasoning")
# A dated snapshot or moving alias prices like its base model.
_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
# Bedrock ids: a cross-region inference prefix and a version suffix name the same model.
_REGION_PREFIX = re.compile(r"^(?:us|eu|apac|global|jp|au|ca|us-gov)\.(?=[a-z0-9-]+\.)")
_VERSION_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of each kind; None means "billed like input" (or output, for reasoning)."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None

    def cost(self, usage: Usage) -> float:
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
        cached, written, reasoning = usage.cached_tokens, usage.cache_write_tokens, usage.reasoning_tokens
        if not (cached or written or reasoning) and prompt >= 0 and completion >= 0:
            return (prompt * self.input + completion * self.output) / PER_MILLION  # the common case
        prompt, completion = max(prompt, 0), max(completion, 0)
        cached = min(max(cached, 0), prompt)
        written = min(max(written, 0), prompt - cached)
        reasoning = min(max(reasoning, 0), completion) if self.reasoning is not None else 0
        micro = (
            (prompt - cached - written) * self.input
            + cached * (self.input if self.cached_input is None else self.cached_input)
            + written * (self.input if self.cache_write is None else self.cache_write)
            + (completion - reasoning) * self.output
            + reasoning * (self.reasoning or 0.0)
        )
        return micro / PER_MILLION

    def estimate(self, prompt_tokens: int, completion_tokens: int) -> float:
        """USD for a request of this size before it is sent (what cost-aware routing ranks by)."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER_MILLION


FREE = Price(0.0, 0.0)


def parse_price(raw: Any) -> Price:
    """A `pricing:` mapping as a Price; ValueError names what is wrong.

    Per million tokens: `input`, `output`, `cached_input`, `cache_write`, `reasoning`; the
    spellings routing's cost strategy also reads are accepted (`input_per_1m` or `prompt`,
    `output_per_1m` or `completion`, and `input_per_1k` / `output_per_1k` per thousand). A
    price with only an input rate charges output tokens at the same rate.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(
            f"expected a mapping with input and output prices per million tokens, got {type(raw).__name__}"
        )
    unknown = sorted(set(raw) - set(PRICE_KEYS) - set(_ALIASES))
    if unknown:
        raise ValueError(f"unknown price key(s) {', '.join(map(str, unknown))} (known: {', '.join(PRICE_KEYS)})")
    values: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{key}: expected a non-negative number of USD per million tokens, got {value!r}")
        name, scale = _ALIASES.get(key, (key, 1.0))
        values.setdefault(name, float(value) * scale)
    if "input" not in values:
        raise ValueError("expected at least 'input' (USD per million tokens), and usually 'output'")
    values.setdefault("output", values["input"])
    return Price(**values)


def check_prices(config: Config, problems: Problems) -> None:
    """Report each model's `pricing:` entry that does not parse, by its key path (at load, not at billing)."""
    for name, provider in config.providers.items():
        for i, model in enumerate(provider.models):
            if "pricing" in model.extra:
                try:
                    parse_price(model.extra["pricing"])
                except ValueError as exc:
                    path = f"providers.{name}.models[{i}].pricing"
                    problems.error(*config.locate(path), str(exc))


_ALIASES = {
    "input_per_1m": ("input", 1.0),
    "prompt": ("input", 1.0),
    "input_per_1k": ("input", 1000.0),
    "output_per_1m": ("output", 1.0),
    "completion": ("output", 1.0),
    "output_per_1k": ("output", 1000.0),
}


@dataclass(frozen=True, slots=True)
class PriceSource:
    """Where one provider type's built-in prices were read, and when."""

    url: str
    as_of: str


@dataclass(frozen=True, slots=True)
class PriceTable:
    """The built-in prices: `as_of` date, then provider type -> model -> Price, and each type's source."""

    as_of: str
    prices: Mapping[str, Mapping[str, Price]]
    sources: Mapping[str, PriceSource] = field(default_factory=dict)

    def lookup(self, provider_type: str, model: str) -> Price | None:
        models = self.prices.get(provider_type)
        if not models:
            return None
        found = models.get(model)
        if found is None:
            base = _SNAPSHOT.sub("", _VERSION_SUFFIX.sub("", _REGION_PREFIX.sub("", model)))
            found = models.get(base) if base != model else None
        return found


@functools.cache
def builtin_table() -> PriceTable:
    text = resources.files("llmmux").joinpath("data/prices.yaml").read_text(encoding="utf-8")
    return table_from_dict(yaml.safe_load(text))


def table_from_dict(data: Mapping[str, Any]) -> PriceTable:
    prices = {
        ptype: {str(model): parse_price(raw) for model, raw in models.items()}
        for ptype, models in (data.get("providers") or {}).items()
    }
    sources = {
        ptype: PriceSource(str(raw.get("url", "")), str(raw.get("as_of", "")))
        for ptype, raw in (data.get("sources") or {}).items()
    }
    return PriceTable(str(data.get("as_of", "")), prices, sources)


class PricedProvider(Protocol):
    """What pricing reads of a provider (providers.base.Provider is one)."""

    name: str
    config: ProviderConfig

    @property
    def is_local(self) -> bool: ...

    @property
    def is_cloud(self) -> bool: ...

    def live_price(self, model: str) -> Price | None:
        """The price the backend itself publishes (OpenRouter's and Together's model listings), if any."""
        ...


Providers: TypeAlias = "Mapping[str, PricedProvider] | Callable[[], Mapping[str, PricedProvider]]"


@dataclass(frozen=True, slots=True)
class _Static:
    """What is known of one model's price without asking the backend, resolved once."""

    provider: PricedProvider | None
    override: Price | None  # `pricing:` on the model's entry
    table: Price | None  # the built-in dated table


class Pricing:
    """The one price catalog: billing and cost-aware routing both ask it.

    A model's price, first match wins: `pricing:` on its entry; the price its backend
    publishes (OpenRouter and Together list one per model); the built-in dated table by provider type
    and model; free for a local provider; else unknown (`known` answers None, routing
    ranks it last, billing records $0 and `unpriced` names it so the operator is told).

    `providers` is the router's providers, or a function returning them: a config reload
    replaces them, and the prices are resolved afresh for the new ones.

    >>> pricing = Pricing(lambda: router.providers)               # doctest: +SKIP
    >>> pricing.cost("openai", "gpt-4o", usage)                   # doctest: +SKIP
    """

    def __init__(self, providers: Providers, table: PriceTable | None = None) -> None:
        self._source = providers if callable(providers) else (lambda: providers)
        self._table = table or builtin_table()
        self._seen: Mapping[str, PricedProvider] | None = None
        self._static: dict[tuple[str, str], _Static] = {}
        self._unpriced: set[str] = set()

    @property
    def as_of(self) -> str:
        return self._table.as_of

    def known(self, provider: str, model: str) -> Price | None:
        """The price of `provider`'s `model`, or None when nobody knows it."""
        static = self._resolved(provider, model)
        if static.override is not None:
            return static.override
        backend = static.provider
        if backend is None:
            return None
        live = backend.live_price(model)
        if live is not None:
            return live
        if static.table is not None:
            return static.table
        # Self-hosted, a cloud API's type pointed at one's own server included.
        return FREE if backend.is_local else None

    def price(self, provider: str, model: str) -> Price:
        """What billing charges: the known price, else 0 (noted in `unpriced` for cloud models)."""
        found = self.known(provider, model)
        if found is not None:
            return found
        backend = self._resolved(provider, model).provider
        if backend is not None and backend.is_cloud and not backend.is_local:
            self._unpriced.add(f"{provider}/{model}")
        return FREE

    def cost(self, provider: str | None, model: str | None, usage: Usage | None) -> float:
        if usage is None or provider is None or model is None:
            return 0.0
        return self.price(provider, model).cost(usage)

    def unpriced(self) -> list[str]:
        """`provider/model` names of cloud models looked up so far that have no price (they cost 0)."""
        return sorted(self._unpriced)

    def warm(self) -> None:
        """Resolve every configured model now, so `unpriced` can warn at startup."""
        for name, provider in self._source().items():
            for entry in provider.config.models:
                self.price(name, entry.name)

    def _resolved(self, provider_name: str, model: str) -> _Static:
        providers = self._source()
        if providers is not self._seen:
            self._seen, self._static = providers, {}
        key = (provider_name, model)
        found = self._static.get(key)
        if found is None:
            found = self._static[key] = self._resolve(providers.get(provider_name), model)
        return found

    def _resolve(self, provider: PricedProvider | None, model: str) -> _Static:
        if provider is None:
            return _Static(None, None, None)
        override = next(
            (
                parse_price(e.extra["pricing"])
                for e in provider.config.models
                if e.name == model and "pricing" in e.extra
            ),
            None,
        )
        return _Static(provider, override, self._table.lookup(provider.config.type, model))
