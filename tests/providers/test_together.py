"""Together AI: the prices its model listing shows reach billing and cost-aware routing, end to end."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

from llmmux.cli import main
from llmmux.config.model import ProviderConfig, Secret
from llmmux.pricing import Price
from llmmux.providers import listed_prices
from llmmux.providers.registry import PROVIDER_TYPES
from llmmux.providers.together import TogetherProvider
from support import Gateway
from upstreams import Behaviour, malformed, status
from upstreams.together_server import CHEAP, DEAR, IMAGE, MODELS, FakeTogether, together_model

KEY = "tgp_v1_0000000000000000000000000000000000000000000"
MASTER = "sk-master-0123456789abcdef"
USER = [{"role": "user", "content": "hello there"}]
# The fake counts words: "hello there" is 2 prompt tokens, "echo: hello there" 3 completion tokens.
DEAR_COST = (2 * 8.0 + 3 * 20.0) / 1_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[FakeTogether]:
    with FakeTogether(key=KEY) as up:
        yield up


@pytest.fixture(autouse=True)
def together(server: FakeTogether) -> FakeTogether:
    server.reset()
    server.listing = [dict(m) for m in MODELS]
    return server


def gateway_config(together: FakeTogether, tmp_path: Path, **sections: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(tmp_path / "ledger.db"), "flush_interval": 0.05},
        "providers": {
            "together": {
                "type": "together",
                "base_url": together.url,
                "api_key": KEY,
                "models": [DEAR, CHEAP, {"name": "pinned/model", "pricing": {"input": 3, "output": 4}}],
            }
        },
        **sections,
    }


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0, timeout=20)


def test_a_chat_request_is_billed_at_the_price_together_lists(together: FakeTogether, tmp_path: Path) -> None:
    with Gateway(gateway_config(together, tmp_path)) as gw, sdk(gw) as client:
        # Read once at start, with the key, before any request.
        listed = together.requests_to("/models")
        assert [r.headers["Authorization"] for r in listed] == [f"Bearer {KEY}"]
        done = client.chat.completions.create(model=DEAR, messages=USER)
        assert done.usage is not None and (done.usage.prompt_tokens, done.usage.completion_tokens) == (2, 3)
        gw.wait_for_ledger(1)
        rows = gw.get("/admin/requests", MASTER).json()["data"]
        assert [(r["provider"], r["model"]) for r in rows] == [("together", DEAR)]
        assert rows[0]["cost_usd"] == pytest.approx(DEAR_COST)
        assert gw.router.pricing.known("together", DEAR) == Price(8.0, 20.0)
        # `pricing:` on a model still wins; a model the listing bills otherwise is left to the config.
        assert gw.router.pricing.known("together", "pinned/model") == Price(3.0, 4.0)
        assert gw.router.providers["together"].live_price(IMAGE) is None


@pytest.mark.parametrize(
    "failure",
    [status(500), malformed(), status(200, {"data": MODELS})],
    ids=["500", "bad-json", "openai-shape"],
)
def test_a_listing_that_fails_leaves_the_models_unpriced_and_requests_served(
    together: FakeTogether, tmp_path: Path, failure: Behaviour, caplog: pytest.LogCaptureFixture
) -> None:
    together.script(failure, path="/models")
    with caplog.at_level(logging.WARNING, logger="llmmux"), Gateway(gateway_config(together, tmp_path)) as gw:
        assert len(together.requests_to("/models")) == 1  # tried at start, and start went on
        with sdk(gw) as client:
            assert client.chat.completions.create(model=DEAR, messages=USER).choices[0].message.content == (
                "echo: hello there"
            )
        assert gw.router.providers["together"].live_price(DEAR) is None
        # Priced as if nothing were listed (the fake is on loopback, which counts as self-hosted: free).
        assert gw.router.pricing.known("together", DEAR) == Price(0.0, 0.0)
        assert gw.router.pricing.known("together", "pinned/model") == Price(3.0, 4.0)
    warned = [r.getMessage() for r in caplog.records if "no live prices" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("together: no live prices (together") and "/models" in warned[0]
    assert KEY not in caplog.text


def test_cost_optimized_routing_ranks_by_the_listed_price(together: FakeTogether, tmp_path: Path) -> None:
    config = gateway_config(
        together,
        tmp_path,
        capabilities={"chat": {"preferred_models": [DEAR, CHEAP]}},
        routing_strategy={"routes": {"capability:chat": "cost_optimized"}},
    )
    with Gateway(config) as gw, sdk(gw) as client:
        client.chat.completions.create(model="capability:chat", messages=USER)
        assert together.requests_to("/chat/completions")[-1].json["model"] == CHEAP
        # The listing's prices, not the configured order, decide: make the first one cheaper.
        gw.router.providers["together"].prices[DEAR] = Price(0.1, 0.1)  # type: ignore[attr-defined]
        client.chat.completions.create(model="capability:chat", messages=USER)
        assert together.requests_to("/chat/completions")[-1].json["model"] == DEAR


# -- the provider on its own --


def provider(together: FakeTogether) -> TogetherProvider:
    config = ProviderConfig(name="tg", type="together", base_url=together.url, api_key=Secret(KEY))
    return TogetherProvider(config, PROVIDER_TYPES["together"])


async def test_models_come_with_owners_context_lengths_and_prices_per_million(together: FakeTogether) -> None:
    tg = provider(together)
    try:
        models = await tg.list_models()
    finally:
        await tg.aclose()
    assert [(m.id, m.owned_by, m.context_length, m.input_cost_per_mtok, m.output_cost_per_mtok) for m in models] == [
        (DEAR, "meta-llama", 131072, 8.0, 20.0),
        (CHEAP, "Qwen", 32768, 0.5, 1.0),
        ("BAAI/bge-large-en-v1.5", "BAAI", 512, 0.02, 0.0),
        (IMAGE, "black-forest-labs", None, None, None),
    ]
    assert tg.cost(CHEAP, 1_000_000, 1_000_000) == pytest.approx(1.5)
    assert tg.cost(IMAGE, 1000, 1000) == 0.0


async def test_prices_are_read_again_every_refresh_and_a_failed_read_keeps_the_last(
    together: FakeTogether, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listed_prices, "PRICE_REFRESH_S", 0.02)
    tg = provider(together)

    async def priced(price: Price | None) -> None:
        deadline = time.monotonic() + 5
        while tg.live_price(CHEAP) != price:
            assert time.monotonic() < deadline, f"{tg.live_price(CHEAP)} never became {price}"
            await asyncio.sleep(0.01)

    try:
        await tg.start()
        assert tg.live_price(CHEAP) == Price(0.5, 1.0)
        together.set_default(status(503))
        seen = len(together.requests_to("/models"))
        while len(together.requests_to("/models")) < seen + 2:  # refreshes that fail
            await asyncio.sleep(0.01)
        assert tg.live_price(CHEAP) == Price(0.5, 1.0)
        together.listing = [together_model(CHEAP, input=0.25, output=0.75)]
        together.set_default(None)
        await priced(Price(0.25, 0.75))
    finally:
        await tg.aclose()


def test_providers_info_lists_togethers_models_with_their_prices(together: FakeTogether, tmp_path: Path) -> None:
    path = tmp_path / "llmmux.yaml"
    path.write_text(json.dumps({"providers": {"together": {"type": "together", "base_url": together.url}}}))
    result = CliRunner().invoke(
        main, ["providers", "info", "together", "--models", "--config", str(path)], env={"TOGETHER_API_KEY": KEY}
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "models (4):" in lines and KEY not in result.output
    assert any(line.startswith(f"  {CHEAP} ") and line.endswith("$0.5 in / $1 out per M tokens") for line in lines), (
        lines
    )
