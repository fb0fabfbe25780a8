"""OpenRouter: attribution headers, routing preferences, priced model discovery and credits, end to end."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

from llmmux.cli import main
from llmmux.config.model import ProviderConfig, Secret
from llmmux.pricing import Price
from llmmux.providers.openrouter import OpenRouterProvider
from llmmux.providers.registry import PROVIDER_TYPES
from support import Gateway
from upstreams import reply, status, tool_call
from upstreams.openrouter_server import FakeOpenRouter
from upstreams.replay import ReplayMixin, replay

KEY = "sk-or-v1-0000000000000000000000000000000000000000000000000000000000000000"
MANAGEMENT_KEY = "sk-or-v1-management-000000000000000000000000000000000000000000000000000"
USER = [{"role": "user", "content": "hello there"}]
PREFERENCES = {"order": ["anthropic", "openai"], "allow_fallbacks": False, "data_collection": "deny"}


class ReplayingOpenRouter(ReplayMixin, FakeOpenRouter):
    pass


@pytest.fixture(scope="module")
def server() -> Iterator[ReplayingOpenRouter]:
    with ReplayingOpenRouter(key=KEY, management_key=MANAGEMENT_KEY) as up:
        yield up


@pytest.fixture(autouse=True)
def openrouter(server: ReplayingOpenRouter) -> ReplayingOpenRouter:
    server.reset()
    return server


def provider_config(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "openrouter",
        "base_url": url,
        "api_key": KEY,
        "site_url": "https://example.org/app",
        "app_name": "Example App",
        "provider_preferences": PREFERENCES,
        "models": ["openai/gpt-4"],
        **extra,
    }


@pytest.fixture(scope="module")
def client(server: ReplayingOpenRouter) -> Iterator[openai.OpenAI]:
    config = {
        "providers": {"or": provider_config(server.url)},
        "routing": {"exact_matches": {"gpt": {"provider": "or", "model": "openai/gpt-4", "fallback": "none"}}},
    }
    with Gateway(config) as gw, openai.OpenAI(base_url=gw.url, api_key="unused", max_retries=0, timeout=20) as sdk:
        yield sdk


def test_chat_carries_attribution_and_the_configured_preferences(
    client: openai.OpenAI, openrouter: ReplayingOpenRouter
) -> None:
    done = client.chat.completions.create(model="gpt", messages=USER, extra_body={"top_k": 20})
    assert (done.choices[0].message.content, done.model) == ("echo: hello there", "gpt")
    sent = openrouter.last_request
    assert sent.path == "/api/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert (sent.headers["HTTP-Referer"], sent.headers["X-OpenRouter-Title"], sent.headers["X-Title"]) == (
        "https://example.org/app",
        "Example App",
        "Example App",
    )
    assert sent.json == {"model": "openai/gpt-4", "messages": USER, "top_k": 20, "provider": PREFERENCES}


def test_a_request_may_refine_the_preferences_without_touching_llmmux_own_provider_pin(
    client: openai.OpenAI, openrouter: ReplayingOpenRouter
) -> None:
    client.chat.completions.create(
        model="gpt",
        messages=USER,
        extra_body={"provider": "or", "openrouter_provider": {"order": ["azure"], "sort": "throughput"}},
    )
    sent = openrouter.last_request.json
    assert sent["provider"] == {**PREFERENCES, "order": ["azure"], "sort": "throughput"}
    assert "openrouter_provider" not in sent


def test_streaming_and_tools(client: openai.OpenAI, openrouter: ReplayingOpenRouter) -> None:
    openrouter.script(reply(tool_calls=[tool_call("lookup", {"q": "x"})]))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    chunks = list(client.chat.completions.create(model="gpt", messages=USER, tools=tools, stream=True))
    deltas = [t for c in chunks for t in c.choices[0].delta.tool_calls or ()]
    assert "".join(d.function.arguments or "" for d in deltas) == '{"q": "x"}'
    assert openrouter.last_request.json["provider"] == PREFERENCES
    assert openrouter.last_request.json["stream"] is True


def test_an_error_mid_stream_reaches_the_client_as_an_error_event(
    client: openai.OpenAI, openrouter: ReplayingOpenRouter
) -> None:
    def event(body: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    base = {"id": "gen-1", "object": "chat.completion.chunk", "created": 1, "model": "openai/gpt-4"}
    stream = (
        b": OPENROUTER PROCESSING\n\n"
        + event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]})
        + event(
            {
                **base,
                "error": {"code": "server_error", "message": "Provider disconnected"},
                "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
            }
        )
    )
    openrouter.script(replay(stream, content_type="text/event-stream"))
    with pytest.raises(openai.APIError, match="Provider disconnected"):
        list(client.chat.completions.create(model="gpt", messages=USER, stream=True))


def test_out_of_credits_is_402_in_openai_shape(client: openai.OpenAI, openrouter: ReplayingOpenRouter) -> None:
    openrouter.script(status(402))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt", messages=USER)
    assert caught.value.status_code == 402
    assert caught.value.message.endswith("Insufficient credits. Add more using https://openrouter.ai/credits")


# -- discovery, prices and credits --


def provider(openrouter: FakeOpenRouter, key: str = KEY) -> OpenRouterProvider:
    config = ProviderConfig(name="or", type="openrouter", base_url=openrouter.url, api_key=Secret(key))
    return OpenRouterProvider(config, PROVIDER_TYPES["openrouter"])


async def test_models_come_with_context_lengths_and_prices_per_million(openrouter: FakeOpenRouter) -> None:
    router = provider(openrouter)
    try:
        models = await router.list_models()
    finally:
        await router.aclose()
    assert [(m.id, m.owned_by, m.context_length, m.input_cost_per_mtok, m.output_cost_per_mtok) for m in models] == [
        ("openai/gpt-4", "openai", 8192, 30.0, 60.0),
        ("meta-llama/llama-3.1-8b-instruct:free", "meta-llama", 131072, 0.0, 0.0),
    ]
    assert router.cost("openai/gpt-4", 1000, 500) == pytest.approx(0.06)
    assert router.cost("unlisted", 1000, 500) == 0.0


@pytest.mark.parametrize(
    ("key", "credits"),
    [
        (KEY, {"credits": "needs a management key"}),
        (MANAGEMENT_KEY, {"total_credits": 100.5, "total_usage": 25.75, "credits_remaining": 74.75}),
    ],
)
async def test_account_shows_the_key_and_the_credits_it_may_see(
    openrouter: FakeOpenRouter, key: str, credits: dict[str, Any]
) -> None:
    router = provider(openrouter, key)
    try:
        facts = await router.account()
    finally:
        await router.aclose()
    assert (facts["label"], facts["limit"], facts["limit_remaining"], facts["usage"]) == (
        "sk-or-v1-au7...890",
        100,
        74.5,
        25.5,
    )
    assert {k: facts[k] for k in credits} == credits


def test_health_url_is_the_model_list() -> None:
    router = OpenRouterProvider(ProviderConfig(name="or", type="openrouter"), PROVIDER_TYPES["openrouter"])
    assert router.health_url() == "https://openrouter.ai/api/v1/models"


# -- the command line --


def run(tmp_path: Path, openrouter: FakeOpenRouter, *args: str, key: str = KEY) -> tuple[int, str]:
    config = {"providers": {"openrouter": provider_config(openrouter.url, api_key=key), "local": {"type": "vllm"}}}
    path = tmp_path / "llmmux.yaml"
    path.write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["providers", *args, "--config", str(path)], env={})
    return result.exit_code, result.output


def test_providers_info_shows_settings_account_and_priced_models(tmp_path: Path, openrouter: FakeOpenRouter) -> None:
    code, output = run(tmp_path, openrouter, "info", "openrouter", "--models", key=MANAGEMENT_KEY)
    assert code == 0, output
    lines = output.splitlines()
    facts = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines if re.search(r"\S\s{2,}\S", line))
    assert (facts["type"], facts["api_key"], facts["app_name"]) == ("openrouter", "set", "Example App")
    assert facts["provider_preferences"] == "order=['anthropic', 'openai'], allow_fallbacks=False, data_collection=deny"
    assert (facts["limit_remaining"], facts["credits_remaining"]) == ("74.5", "74.75")
    assert facts["rate_limit"].startswith("requests=1000, interval=1h")
    assert KEY not in output and MANAGEMENT_KEY not in output
    assert "models (2):" in lines
    assert any(
        line.startswith("  openai/gpt-4 ") and line.endswith("8,192 ctx  $30 in / $60 out per M tokens")
        for line in lines
    ), output


def test_providers_info_without_a_management_key_says_so(tmp_path: Path, openrouter: FakeOpenRouter) -> None:
    code, output = run(tmp_path, openrouter, "info", "openrouter")
    assert code == 0 and re.search(r"^  credits +needs a management key$", output, re.MULTILINE), output


def test_providers_info_for_an_unknown_name_suggests_close_ones(tmp_path: Path, openrouter: FakeOpenRouter) -> None:
    code, output = run(tmp_path, openrouter, "info", "openroute")
    assert code == 1 and "no provider named 'openroute'" in output and "Did you mean: openrouter?" in output


def test_providers_info_reports_an_unreachable_backend(tmp_path: Path, openrouter: FakeOpenRouter) -> None:
    openrouter.set_default(status(503))
    code, output = run(tmp_path, openrouter, "info", "openrouter", "--models")
    assert code == 1 and "live information unavailable: openrouter /models returned 503" in output


def test_providers_list(tmp_path: Path, openrouter: FakeOpenRouter) -> None:
    code, output = run(tmp_path, openrouter, "list")
    assert code == 0
    assert output.splitlines() == [
        f"openrouter           openrouter         active    key set  {openrouter.url}",
        "local                vllm               active    no key   http://127.0.0.1:8000/v1",
    ]


def test_an_anthropic_clients_cache_breakpoints_reach_openrouter_on_the_marked_parts(
    openrouter: ReplayingOpenRouter,
) -> None:
    config = {
        "providers": {"or": provider_config(openrouter.url, models=["anthropic/claude-sonnet-4.5"])},
        "routing": {"exact_matches": {"claude": {"provider": "or", "model": "anthropic/claude-sonnet-4.5"}}},
    }
    marked = {"type": "ephemeral"}
    body = {
        "model": "claude",
        "max_tokens": 64,
        "system": [{"type": "text", "text": "Long rules.", "cache_control": marked}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": marked}]}],
        "context_management": {"edits": []},
    }
    with Gateway(config) as gw:
        answer = gw.post_raw("/v1/messages", json.dumps(body).encode(), {"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-llmmux-dropped-params"] == "context_management"
    sent = openrouter.last_request.json["messages"]
    assert sent == [
        {"role": "system", "content": [{"type": "text", "text": "Long rules.", "cache_control": marked}]},
        {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": marked}]},
    ]


def test_a_started_gateway_prices_openrouter_models_from_the_listing(openrouter: ReplayingOpenRouter) -> None:
    with Gateway({"providers": {"or": provider_config(openrouter.url)}}) as gw:
        # Read at start: billing and cost-aware routing price the model before any request or CLI call.
        assert [r.path for r in openrouter.requests] == ["/api/v1/models"]
        assert gw.router.pricing.known("or", "openai/gpt-4") == Price(30.0, 60.0)
        assert gw.router.table.pricing.known("or", "openai/gpt-4") == Price(30.0, 60.0)
