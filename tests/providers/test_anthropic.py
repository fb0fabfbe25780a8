"""The anthropic provider against a fake Anthropic API over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llmmux.config.loader import config_from_dict
from llmmux.config.model import ProviderConfig, Secret
from llmmux.errors import (
    ContextLengthExceeded,
    UpstreamBadResponse,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from llmmux.providers import anthropic as module
from llmmux.providers.anthropic import AnthropicProvider
from llmmux.providers.registry import PROVIDER_TYPES, create_provider
from llmmux.router import Router
from llmmux.types import ChatChunk, Usage
from llmmux.wire import anthropic as wire
from llmmux.wire import openai as openai_wire
from upstreams import hang, malformed
from upstreams.anthropic_server import (
    API_KEY,
    DOCUMENTED_MESSAGE,
    DOCUMENTED_STREAM,
    FakeAnthropic,
    error_event,
    fail,
    overloaded,
    prompt_too_long,
    rate_limited,
    replay,
    reply,
    tool_call,
)

fake_module = FakeAnthropic.fixture(scope="module", name="fake_module")
MakeProvider = Callable[..., AnthropicProvider]


@pytest.fixture
def fake(fake_module: FakeAnthropic) -> FakeAnthropic:
    fake_module.reset()
    return fake_module


@pytest.fixture
async def make_provider(fake: FakeAnthropic) -> AsyncIterator[MakeProvider]:
    made: list[AnthropicProvider] = []

    def make(**settings: Any) -> AnthropicProvider:
        extra = settings.pop("extra", {})
        config = ProviderConfig(
            name="claude",
            type="anthropic",
            base_url=fake.url,
            api_key=Secret(settings.pop("api_key", API_KEY)),
            extra=extra,
            **settings,
        )
        provider = create_provider(config)
        assert isinstance(provider, AnthropicProvider)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(make_provider: MakeProvider) -> AnthropicProvider:
    return make_provider()


def chat(**body: Any) -> Any:
    body.setdefault("model", "chat")
    body.setdefault("messages", [{"role": "user", "content": "Hello there"}])
    return openai_wire.decode_chat_request(body)


async def collect(provider: AnthropicProvider, request: Any) -> list[ChatChunk]:
    return [c async for c in provider.stream(request, "claude-sonnet-4-5")]


# -- requests on the wire --


async def test_request_headers_path_and_body(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    request = chat(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        temperature=0.5,
        stop=["END"],
        user="u-1",
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    await provider.complete(request, "claude-sonnet-4-5")
    sent = fake.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    assert sent.headers["x-api-key"] == API_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["content-type"] == "application/json"
    assert "authorization" not in {k.lower() for k in sent.headers}
    assert sent.json == {
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief.",
        "temperature": 0.5,
        "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "metadata": {"user_id": "u-1"},
        "model": "claude-sonnet-4-5",
    }


async def test_default_max_tokens_comes_from_config(make_provider: MakeProvider, fake: FakeAnthropic) -> None:
    provider = make_provider(extra={"default_max_tokens": 16000})
    await provider.complete(chat(), "claude-sonnet-4-5")
    await provider.complete(chat(max_tokens=77), "claude-sonnet-4-5")
    assert [r.json["max_tokens"] for r in fake.requests] == [16000, 77]


async def test_anthropic_client_body_passes_through(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    body = {
        "model": "public",
        "max_tokens": 64,
        "provider": "claude",
        "system": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}
        ],
    }
    await provider.complete(wire.decode_chat_request(body), "claude-haiku-4-5")
    assert fake.last_request.json == {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "system": body["system"],
        "messages": body["messages"],
    }


async def test_a_body_anthropic_refuses_comes_back_as_its_own_error(provider: AnthropicProvider) -> None:
    body = {"model": "public", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}], "logit_bias": {}}
    with pytest.raises(UpstreamClientError) as caught:
        await provider.complete(wire.decode_chat_request(body), "claude-haiku-4-5")
    assert caught.value.status == 400
    assert "logit_bias: Extra inputs are not permitted" in caught.value.message
    assert wire.render_error(caught.value) == (400, caught.value.body)


# -- replies --


async def test_complete_decodes_the_message(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(reply("Sure.", usage={"input_tokens": 12, "cache_read_input_tokens": 30}))
    response = await provider.complete(chat(), "claude-sonnet-4-5")
    assert response.model == "claude-sonnet-4-5"
    assert response.choices[0].message.content == "Sure."
    assert response.choices[0].finish_reason == "stop"
    assert response.usage == Usage(prompt_tokens=42, completion_tokens=1, total_tokens=43, cached_tokens=30)


async def test_complete_with_tool_use(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(reply("Let me look.", tool_calls=[tool_call("get_weather", {"city": "Paris"}, id="toolu_01A")]))
    response = await provider.complete(chat(), "claude-sonnet-4-5")
    message = response.choices[0].message
    assert message.content == "Let me look."
    assert [(c.id, c.name, c.arguments) for c in message.tool_calls or ()] == [
        ("toolu_01A", "get_weather", '{"city":"Paris"}')
    ]
    assert response.choices[0].finish_reason == "tool_calls"


async def test_documented_message_is_decoded(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(replay(DOCUMENTED_MESSAGE))
    response = await provider.complete(chat(), "claude-sonnet-4-5")
    assert response.raw == DOCUMENTED_MESSAGE
    assert response.choices[0].message.content == "Hi! My name is Claude."


async def test_malformed_reply_is_a_bad_response(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(replay(b'{"type":"message","content":'))
    with pytest.raises(UpstreamBadResponse, match="not an Anthropic message"):
        await provider.complete(chat(), "claude-sonnet-4-5")


# -- streams --


async def test_stream_text(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    chunks = await collect(provider, chat(stream=True))
    assert fake.last_request.json["stream"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: Hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_stream_parallel_tool_calls(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(
        reply(
            "Checking.",
            thinking="Two cities.",
            tool_calls=[
                tool_call("get_weather", {"city": "Paris", "unit": "c"}, id="toolu_01A"),
                tool_call("get_weather", {"city": "Rome"}, id="toolu_01B"),
            ],
        )
    )
    chunks = await collect(provider, chat(stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.reasoning or "" for d in deltas) == "Two cities."
    assert "".join(d.content or "" for d in deltas) == "Checking."
    calls: dict[int, list[str]] = {}
    for d in deltas:
        for t in d.tool_calls or ():
            calls.setdefault(t.index, []).append(t.arguments or "")
            if t.id:
                assert (t.index, t.id, t.name) in {(0, "toolu_01A", "get_weather"), (1, "toolu_01B", "get_weather")}
    assert {i: "".join(parts) for i, parts in calls.items()} == {
        0: '{"city": "Paris", "unit": "c"}',
        1: '{"city": "Rome"}',
    }
    assert chunks[-2].choices[0].finish_reason == "tool_calls"


async def test_documented_stream_replayed(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(replay(DOCUMENTED_STREAM))
    chunks = await collect(provider, chat(stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert b"".join(c.raw or b"" for c in chunks) == DOCUMENTED_STREAM
    assert chunks[-1].usage == Usage(prompt_tokens=25, completion_tokens=15, total_tokens=40)


async def test_stream_cut_mid_way(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(reply("A longer answer that will not arrive whole.", drop_after=5))
    got: list[ChatChunk] = []
    with pytest.raises(UpstreamBadResponse):
        async for chunk in provider.stream(chat(stream=True), "claude-sonnet-4-5"):
            got.append(chunk)
    assert got and got[0].choices[0].delta.content


async def test_stream_ending_without_message_stop(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(replay(DOCUMENTED_STREAM.split(b"event: message_delta")[0]))
    with pytest.raises(UpstreamBadResponse, match="before message_stop"):
        await collect(provider, chat(stream=True))


async def test_garbage_event_mid_stream(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(malformed(after_chunks=4))
    with pytest.raises(UpstreamBadResponse, match="not an Anthropic stream event"):
        await collect(provider, chat(stream=True))


async def test_silent_upstream_times_out(make_provider: MakeProvider, fake: FakeAnthropic) -> None:
    fake.script(hang(2))
    with pytest.raises(UpstreamTimeout) as caught:
        await make_provider(timeout=0.2).complete(chat(), "claude-sonnet-4-5")
    assert caught.value.retryable


async def test_error_event_mid_stream(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(error_event(5, content="Partial answer here."))
    got: list[ChatChunk] = []
    with pytest.raises(UpstreamServerError) as caught:
        async for chunk in provider.stream(chat(stream=True), "claude-sonnet-4-5"):
            got.append(chunk)
    assert len(got) == 2
    assert (caught.value.upstream_status, caught.value.retryable) == (529, True)
    assert "overloaded_error: Overloaded" in caught.value.message


async def test_error_event_before_any_content_fails_the_first_chunk(
    provider: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.script(error_event(3, "api_error", content="never"))
    with pytest.raises(UpstreamServerError):
        await provider.stream(chat(stream=True), "claude-sonnet-4-5").__anext__()


async def test_http_error_before_the_stream(provider: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.script(overloaded())
    with pytest.raises(UpstreamServerError) as caught:
        await provider.stream(chat(stream=True), "claude-sonnet-4-5").__anext__()
    assert caught.value.upstream_status == 529


# -- errors --


@pytest.mark.parametrize(
    ("behaviour", "cls", "status", "kind", "retryable"),
    [
        (overloaded(), UpstreamServerError, 529, "overloaded_error", True),
        (fail(500), UpstreamServerError, 500, "api_error", True),
        (rate_limited(7), UpstreamRateLimited, 429, "rate_limit_error", True),
        (fail(401), UpstreamClientError, 401, "authentication_error", False),
        (fail(403), UpstreamClientError, 403, "permission_error", False),
        (fail(404, message="model: claude-nope"), UpstreamClientError, 404, "not_found_error", False),
        (fail(413), UpstreamClientError, 413, "request_too_large", False),
        (prompt_too_long(), ContextLengthExceeded, 400, "invalid_request_error", False),
    ],
)
async def test_http_errors_are_classified(
    provider: AnthropicProvider, fake: FakeAnthropic, behaviour: Any, cls: type, status: int, kind: str, retryable: bool
) -> None:
    fake.script(behaviour)
    with pytest.raises(UpstreamError) as caught:
        await provider.complete(chat(), "claude-sonnet-4-5")
    error = caught.value
    assert type(error) is cls
    assert (error.upstream_status, error.retryable, error.provider) == (status, retryable, "claude")
    assert error.message.startswith(f"claude returned {status}: {kind}: ")
    assert error.retry_after == (7.0 if status == 429 else None)


async def test_wrong_key_is_an_authentication_error_that_hides_the_key(make_provider: MakeProvider) -> None:
    provider = make_provider(api_key="sk-ant-wrong-secret-value")
    with pytest.raises(UpstreamClientError) as caught:
        await provider.complete(chat(), "claude-sonnet-4-5")
    assert (caught.value.status, caught.value.type) == (401, "authentication_error")
    assert "sk-ant-wrong" not in str(caught.value) and "sk-ant-wrong" not in repr(provider.config)


# -- models, health, config --


async def test_list_models_follows_pages(
    provider: AnthropicProvider, fake: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "MODELS_PAGE_SIZE", 2)
    models = await provider.list_models()
    assert [m.id for m in models] == ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]
    assert {(m.provider, m.context_length, m.owned_by) for m in models} == {("claude", 200000, "anthropic")}
    assert [r.query for r in fake.requests] == [{"limit": "2"}, {"limit": "2", "after_id": "claude-haiku-4-5"}]
    assert fake.last_request.headers["x-api-key"] == API_KEY


async def test_list_models_with_a_bad_key(make_provider: MakeProvider) -> None:
    with pytest.raises(UpstreamClientError) as caught:
        await make_provider(api_key="nope").list_models()
    assert caught.value.status == 401


async def test_health_probes_models(make_provider: MakeProvider, fake: FakeAnthropic) -> None:
    healthy = await make_provider().health()
    assert (healthy.ok, healthy.status, healthy.url) == (True, 200, fake.root_url + "/v1/models")
    refused = await make_provider(api_key="nope").health()
    assert (refused.ok, refused.status) == (False, 401)
    assert "authentication_error" in refused.detail


def test_registry_row() -> None:
    row = PROVIDER_TYPES["anthropic"]
    assert (row.factory, row.base_url, row.env_var, row.health_endpoint, row.cloud) == (
        AnthropicProvider,
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        "/v1/models",
        True,
    )
    assert row.headers == {"anthropic-version": "2023-06-01"}


async def test_key_from_environment_and_default_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-0000")
    provider = create_provider(ProviderConfig(name="c", type="anthropic"))
    assert isinstance(provider, AnthropicProvider)
    assert provider.messages_url == "https://api.anthropic.com/v1/messages"
    assert provider.health_url() == "https://api.anthropic.com/v1/models"
    assert provider.validate_config() == []
    assert provider.info()["api_key"] == "set"
    await provider.aclose()


async def test_validate_config_reports_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    provider = create_provider(ProviderConfig(name="c", type="anthropic", extra={"default_max_tokens": "lots"}))
    assert provider.validate_config() == [
        "no API key: set ANTHROPIC_API_KEY",
        "default_max_tokens: expected a positive integer, got 'lots'",
    ]
    assert isinstance(provider, AnthropicProvider) and provider.default_max_tokens == wire.DEFAULT_MAX_TOKENS
    await provider.aclose()


async def test_default_max_tokens_in_a_config_file_is_an_option_not_an_unknown_key(fake: FakeAnthropic) -> None:
    config, problems = config_from_dict(
        {
            "providers": {
                "claude": {
                    "type": "anthropic",
                    "base_url": fake.url,
                    "api_key": API_KEY,
                    "default_max_tokens": 32000,
                    "models": [{"name": "claude-sonnet-4-5"}],
                }
            }
        }
    )
    assert list(problems) == []
    async with Router(config) as router:
        provider = router.providers["claude"]
        assert isinstance(provider, AnthropicProvider) and provider.default_max_tokens == 32000
        done = await router.chat(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "Hi"}])
    assert done.response.choices[0].message.content == "Echo: Hi"
    assert fake.last_request.json["max_tokens"] == 32000
