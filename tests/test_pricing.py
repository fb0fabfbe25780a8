"""Cost arithmetic against hand-computed cases, and where a price comes from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmmux.config import ConfigError, config_from_dict
from llmmux.loading import check
from llmmux.pricing import FREE, Price, Pricing, builtin_table, parse_price
from llmmux.providers.http_provider import HTTPProvider
from llmmux.providers.mock_transport import MockReply, MockTransport
from llmmux.router import Router
from llmmux.types import Usage


def test_openai_cached_input_is_billed_at_the_cached_rate() -> None:
    # gpt-4o: 2.50 input, 1.25 cached input, 10.00 output per million.
    usage = Usage(prompt_tokens=2000, cached_tokens=1500, completion_tokens=300)
    # 500 fresh * 2.50 + 1500 cached * 1.25 + 300 * 10.00 = 1250 + 1875 + 3000 = 6125 micro-dollars
    assert builtin_table().lookup("openai", "gpt-4o") == Price(input=2.5, output=10.0, cached_input=1.25)
    assert builtin_table().lookup("openai", "gpt-4o").cost(usage) == pytest.approx(0.006125)  # type: ignore[union-attr]


def test_anthropic_cache_reads_and_writes_each_have_their_rate() -> None:
    price = builtin_table().lookup("anthropic", "claude-sonnet-4")
    assert price == Price(input=3.0, output=15.0, cached_input=0.30, cache_write=3.75)
    usage = Usage(prompt_tokens=10_000, cached_tokens=6000, cache_write_tokens=3000, completion_tokens=500)
    # 1000 fresh * 3 + 6000 * 0.30 + 3000 * 3.75 + 500 * 15 = 3000 + 1800 + 11250 + 7500 = 23550
    assert price.cost(usage) == pytest.approx(0.02355)  # type: ignore[union-attr]


def test_reasoning_billed_apart_only_when_priced_apart() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=2000, reasoning_tokens=1500)
    separate = Price(input=0.3, output=0.6, reasoning=3.5)
    # 1000 * 0.3 + 500 visible * 0.6 + 1500 reasoning * 3.5 = 300 + 300 + 5250
    assert separate.cost(usage) == pytest.approx(0.00585)
    as_output = Price(input=0.3, output=0.6)
    # reasoning is part of completion_tokens and billed as output: 300 + 2000 * 0.6
    assert as_output.cost(usage) == pytest.approx(0.0015)


def test_counts_that_do_not_add_up_are_clamped_not_billed_twice() -> None:
    price = Price(input=1.0, output=1.0, cached_input=0.5, cache_write=2.0)
    # A backend claiming more cached tokens than prompt tokens: all 100 are billed as cached.
    assert price.cost(Usage(prompt_tokens=100, cached_tokens=250, cache_write_tokens=50)) == pytest.approx(50e-6)
    assert price.cost(Usage(prompt_tokens=-5, completion_tokens=-1)) == 0.0


def test_unset_cache_rates_fall_back_to_input() -> None:
    price = Price(input=4.0, output=8.0)
    assert price.cost(Usage(prompt_tokens=1000, cached_tokens=400, cache_write_tokens=100)) == pytest.approx(0.004)


def test_the_builtin_table_is_dated_and_every_row_is_complete() -> None:
    table = builtin_table()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table.as_of)
    # Every cloud type llmmux ships whose prices are a fixed list (OpenRouter's come live).
    shipped = {"openai", "anthropic", "gemini", "xai", "bedrock", "azure", "groq", "deepseek", "mistral", "fireworks"}
    assert shipped <= set(table.prices)
    for models in table.prices.values():
        for model, price in models.items():
            # Catches swapped columns: output never costs less than input (embeddings have none),
            # cache reads never more.
            embedding = "embed" in model and price.output == 0
            assert 0 < price.input <= price.output or embedding, model
            assert price.cached_input is None or price.cached_input < price.input, model


@pytest.mark.parametrize(
    ("ptype", "model", "base"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4"),
        ("bedrock", "amazon.nova-pro-v1:0", "amazon.nova-pro"),
        ("bedrock", "global.anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-haiku-4-5"),
    ],
)
def test_snapshots_and_aliases_price_like_their_base(ptype: str, model: str, base: str) -> None:
    table = builtin_table()
    assert table.lookup(ptype, model) == table.lookup(ptype, base) is not None


def test_every_provider_type_in_the_table_names_its_source_and_the_date_it_was_read() -> None:
    table = builtin_table()
    assert set(table.sources) == set(table.prices)
    for ptype, source in table.sources.items():
        assert source.url.startswith("https://"), ptype
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source.as_of), ptype


@pytest.mark.parametrize(
    ("ptype", "model", "price"),
    [
        ("mistral", "mistral-medium-3.5", Price(1.5, 7.5)),
        ("mistral", "mistral-small-2603", Price(0.15, 0.6, cached_input=0.015)),
        ("fireworks", "accounts/fireworks/models/gpt-oss-120b", Price(0.15, 0.6, cached_input=0.015)),
        ("fireworks", "accounts/fireworks/models/kimi-k2p6", Price(0.95, 4.0, cached_input=0.16)),
    ],
)
def test_the_widened_table_bills_mistral_and_fireworks(ptype: str, model: str, price: Price) -> None:
    router = _router([model], ptype=ptype)
    assert router.pricing.known("cloud", model) == price
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert router.pricing.cost("cloud", model, usage) == pytest.approx(price.input + price.output)


def test_a_moving_alias_is_not_priced_as_whatever_it_pointed_at_once() -> None:
    assert builtin_table().lookup("mistral", "mistral-large-latest") is None


def test_a_model_that_merely_starts_like_a_priced_one_is_not_guessed() -> None:
    assert builtin_table().lookup("openai", "gpt-4o-audio-preview") is None


def _router(models: list[Any], ptype: str = "openai") -> Router:
    return Router.from_config(
        {
            "providers": {
                "cloud": {
                    "type": ptype,
                    "api_key": "sk-test-000000000000",
                    "base_url": "https://api.cloud.example/v1",  # a loopback address would make it self-hosted
                    "models": models,
                },
                "local": {"type": "vllm", "base_url": "http://127.0.0.1:9/v1", "models": ["llama-3.1-8b"]},
            }
        }
    )


def test_pricing_in_the_registry_overrides_the_builtin_table() -> None:
    router = _router([{"name": "gpt-4o", "pricing": {"input": 1, "output": 2}}, "gpt-4o-mini"])
    pricing = Pricing(router.providers)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert pricing.cost("cloud", "gpt-4o", usage) == pytest.approx(3.0)
    assert pricing.cost("cloud", "gpt-4o-mini", usage) == pytest.approx(0.75)


def test_local_models_cost_nothing_unless_priced_and_are_not_reported() -> None:
    router = _router(["gpt-4o"])
    pricing = Pricing(router.providers)
    assert pricing.price("local", "llama-3.1-8b") is FREE
    assert pricing.unpriced() == []


def test_an_unpriced_cloud_model_costs_zero_and_is_reported() -> None:
    router = _router(["gpt-4o", "ft:gpt-4o:acme:1"])
    pricing = Pricing(router.providers)
    pricing.warm()
    assert pricing.unpriced() == ["cloud/ft:gpt-4o:acme:1"]
    assert pricing.cost("cloud", "ft:gpt-4o:acme:1", Usage(prompt_tokens=10)) == 0.0


def test_missing_usage_or_provider_costs_nothing() -> None:
    pricing = Pricing(_router(["gpt-4o"]).providers)
    assert pricing.cost("cloud", "gpt-4o", None) == 0.0
    assert pricing.cost(None, None, Usage(prompt_tokens=5)) == 0.0


def test_routing_ranks_by_the_price_billing_charges() -> None:
    # gpt-4o has no `pricing:` entry: both sides take the built-in table's price (they once disagreed).
    router = _router(["gpt-4o", {"name": "cheap", "pricing": {"input": 0.01, "output": 0.01}}, "ft:x"])
    signals_price = router.table.pricing.known
    assert router.table.pricing is router.pricing
    assert signals_price("cloud", "gpt-4o") == builtin_table().lookup("openai", "gpt-4o")
    assert signals_price("cloud", "cheap") == Price(0.01, 0.01)
    assert signals_price("cloud", "ft:x") is None  # unknown: ranked last by cost_optimized
    assert signals_price("local", "llama-3.1-8b") is FREE


def test_a_price_the_backend_publishes_is_used_by_billing_and_routing() -> None:
    router = _router(["some/model", {"name": "pinned/model", "pricing": {"input": 9, "output": 9}}], ptype="openrouter")
    provider = router.providers["cloud"]
    assert router.pricing.known("cloud", "some/model") is None  # nothing listed yet
    provider.prices = {"some/model": Price(1.0, 2.0), "pinned/model": Price(1.0, 2.0)}  # type: ignore[attr-defined]
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)
    assert router.pricing.cost("cloud", "some/model", usage) == pytest.approx(3.0)
    assert router.pricing.known("cloud", "pinned/model") == Price(9.0, 9.0)  # `pricing:` still wins
    assert provider.cost("some/model", 1_000_000, 1_000_000) == pytest.approx(3.0)


async def test_the_prices_openrouter_lists_reach_billing_and_routing() -> None:
    listing = {"data": [{"id": "a/m", "pricing": {"prompt": "0.000003", "completion": "0.000015"}}]}
    router = _router(["a/m"], ptype="openrouter")
    provider = router.providers["cloud"]
    assert isinstance(provider, HTTPProvider)
    provider.transport = MockTransport(lambda _: MockReply.json(listing))
    assert router.pricing.known("cloud", "a/m") is None
    await provider.list_models()
    assert router.pricing.known("cloud", "a/m") == Price(3.0, 15.0)  # billing
    assert router.table.pricing.known("cloud", "a/m") == Price(3.0, 15.0)  # cost-aware routing
    await router.aclose()


def test_the_spellings_routing_reads_mean_the_same_price() -> None:
    assert parse_price({"input_per_1k": 0.03, "output_per_1k": 0.06}) == Price(input=30.0, output=60.0)
    assert parse_price({"prompt": 1, "completion": 2}) == Price(input=1.0, output=2.0)
    assert parse_price({"input": 4}) == Price(input=4.0, output=4.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"output": 1}, "expected at least 'input'"),
        ({"input": 1, "output": -2}, "output: expected a non-negative number"),
        ({"input": 1, "output": 2, "cache_read": 0.1}, "unknown price key(s) cache_read"),
        ({"input": True, "output": 2}, "input: expected a non-negative number"),
        ("2.5/10", "expected a mapping"),
    ],
)
def test_bad_prices_say_what_is_wrong(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_price(raw)


def test_validate_reports_a_bad_price_with_its_key_path() -> None:
    config, problems = config_from_dict(
        {
            "providers": {
                "cloud": {
                    "type": "openai_compatible",
                    "base_url": "http://127.0.0.1:9/v1",
                    "models": ["ok", {"name": "m", "pricing": {"input": "cheap", "output": 1}}],
                }
            }
        }
    )
    check(config, problems=problems)
    errors = [(p.path, p.message) for p in problems.errors]
    assert errors == [
        (
            "providers.cloud.models[1].pricing",
            "input: expected a non-negative number of USD per million tokens, got 'cheap'",
        )
    ]


BAD_PRICE = {
    "providers": {
        "cloud": {
            "type": "openai_compatible",
            "base_url": "http://127.0.0.1:9/v1",
            "models": [{"name": "m", "pricing": {"input": -1}}],
        }
    }
}


def test_router_from_config_refuses_a_bad_price_before_any_request() -> None:
    # Before, Router.from_config skipped validation: the bad entry surfaced as a ValueError
    # from billing, after the upstream had already answered.
    with pytest.raises(ConfigError) as raised:
        Router.from_config(BAD_PRICE)
    assert [(p.path, p.message) for p in raised.value.problems if p.severity == "error"] == [
        ("providers.cloud.models[0].pricing", "input: expected a non-negative number of USD per million tokens, got -1")
    ]


def test_router_from_a_file_and_its_reload_check_refuse_a_bad_price(tmp_path: Path) -> None:
    good = {"providers": {"cloud": {**BAD_PRICE["providers"]["cloud"], "models": ["m"]}}}
    file = tmp_path / "llmmux.yaml"
    file.write_text(yaml.safe_dump(BAD_PRICE))
    with pytest.raises(ConfigError, match=r"llmmux.yaml: providers.cloud.models\[0\].pricing"):
        Router.from_config(file)
    file.write_text(yaml.safe_dump(good))
    router = Router.from_config(file)
    file.write_text(yaml.safe_dump(BAD_PRICE))
    _, problems = router.check_source()
    assert [p.path for p in problems.errors] == ["providers.cloud.models[0].pricing"]
