"""Azure OpenAI end to end: the `openai` SDK -> llmmux -> a fake Azure OpenAI resource."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmmux.config.model import ProviderConfig
from llmmux.providers.azure import AzureOpenAIProvider
from llmmux.providers.registry import PROVIDER_TYPES
from support import Gateway
from upstreams import FakeOpenAI, reply, status, tool_call
from upstreams.azure_server import CONTENT_FILTER_ERROR, FakeAzure
from upstreams.replay import replay

KEY = "0123456789abcdef0123456789abcdef"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake.token"
USER = [{"role": "user", "content": "hello there"}]
FILTERS = {
    "hate": {"filtered": False, "severity": "safe"},
    "self_harm": {"filtered": False, "severity": "safe"},
    "sexual": {"filtered": False, "severity": "safe"},
    "violence": {"filtered": False, "severity": "safe"},
}


# One gateway and one pair of fakes for the module; each test gets the fakes freshly reset.
@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeAzure, FakeOpenAI]]:
    with (
        FakeAzure(
            key=KEY,
            ad_token=TOKEN,
            deployments={"gpt-4o-prod": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"},
        ) as az,
        FakeOpenAI() as spare,
    ):
        yield az, spare


@pytest.fixture(autouse=True)
def azure(servers: tuple[FakeAzure, FakeOpenAI]) -> Iterator[FakeAzure]:
    for server in servers:
        server.reset()
    yield servers[0]
    servers[0].key = KEY


@pytest.fixture
def spare(servers: tuple[FakeAzure, FakeOpenAI]) -> FakeOpenAI:
    return servers[1]


@pytest.fixture(scope="module")
def gateway(servers: tuple[FakeAzure, FakeOpenAI]) -> Iterator[Gateway]:
    azure, openai_upstream = servers
    config = {
        "providers": {
            "az": {
                "type": "azure",
                "base_url": azure.url,
                "api_key": KEY,
                "deployments": {"gpt-4o": "gpt-4o-prod"},
                "models": ["gpt-4o", "gpt-4o-mini"],
            },
            "az-entra": {"type": "azure", "base_url": azure.url + "/openai", "azure_ad_token": TOKEN},
            "az-v1": {"type": "azure", "base_url": azure.url + "/openai/v1", "api_key": KEY, "api_version": "v1"},
            "spare": {"type": "openai_compatible", "base_url": openai_upstream.url},
        },
        "routing": {
            "exact_matches": {
                "four": {"provider": "az", "model": "gpt-4o", "fallback": "spare"},
                "entra": {"provider": "az-entra", "model": "gpt-4o-prod", "fallback": "none"},
                "v1": {"provider": "az-v1", "model": "gpt-4o-mini", "fallback": "none"},
            }
        },
    }
    with Gateway(config) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as sdk:
        yield sdk


def test_a_mapped_deployment_with_api_key(client: openai.OpenAI, azure: FakeAzure) -> None:
    raw = client.chat.completions.with_raw_response.create(model="four", messages=USER, temperature=0.2)
    done = raw.parse()
    assert (done.choices[0].message.content, done.model) == ("echo: hello there", "four")
    assert raw.headers["x-llmmux-model"] == "gpt-4o"
    sent = azure.last_request
    assert (sent.path, dict(sent.query)) == (
        "/openai/deployments/gpt-4o-prod/chat/completions",
        {"api-version": "2024-10-21"},
    )
    assert sent.headers["api-key"] == KEY and "Authorization" not in sent.headers
    assert sent.json == {"model": "gpt-4o-prod", "messages": USER, "temperature": 0.2}


def test_an_unmapped_model_is_its_own_deployment(client: openai.OpenAI, azure: FakeAzure) -> None:
    client.chat.completions.create(model="az/gpt-4o-mini", messages=USER)
    assert azure.last_request.path == "/openai/deployments/gpt-4o-mini/chat/completions"


def test_an_entra_id_token_is_a_bearer_token(client: openai.OpenAI, azure: FakeAzure) -> None:
    client.chat.completions.create(model="entra", messages=USER)
    sent = azure.last_request
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}" and "api-key" not in sent.headers
    assert sent.path == "/openai/deployments/gpt-4o-prod/chat/completions"


def test_the_v1_api_names_the_deployment_in_the_body(client: openai.OpenAI, azure: FakeAzure) -> None:
    done = client.chat.completions.create(model="v1", messages=USER)
    assert done.choices[0].message.content == "echo: hello there"
    sent = azure.last_request
    assert (sent.path, dict(sent.query), sent.json["model"]) == ("/openai/v1/chat/completions", {}, "gpt-4o-mini")


def test_streaming_with_usage(client: openai.OpenAI, azure: FakeAzure) -> None:
    chunks = list(
        client.chat.completions.create(model="four", messages=USER, stream=True, stream_options={"include_usage": True})
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert azure.last_request.json["stream_options"] == {"include_usage": True}


def azure_chunk(choices: list[dict[str, Any]], **fields: Any) -> bytes:
    body = {
        "choices": choices,
        "created": 1736407895,
        "id": "chatcmpl-AnhIt2rw8vL8czymkCwEOKKTg7HPc",
        "model": "gpt-4o-mini-2024-07-18",
        "object": "chat.completion.chunk",
        "system_fingerprint": "fp_5154047bf2",
        **fields,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def test_content_filter_annotations_never_reach_the_client(client: openai.OpenAI, azure: FakeAzure) -> None:
    stream = (
        azure_chunk(
            [],
            created=0,
            id="",
            model="",
            object="",
            prompt_filter_results=[{"prompt_index": 0, "content_filter_results": FILTERS}],
        )
        + azure_chunk(
            [
                {
                    "content_filter_results": {},
                    "delta": {"content": "", "refusal": None, "role": "assistant"},
                    "finish_reason": None,
                    "index": 0,
                    "logprobs": None,
                }
            ]
        )
        + azure_chunk(
            [
                {
                    "content_filter_results": FILTERS,
                    "delta": {"content": "Hi"},
                    "finish_reason": None,
                    "index": 0,
                    "logprobs": None,
                }
            ]
        )
        + azure_chunk(
            [{"content_filter_results": {}, "delta": {}, "finish_reason": "stop", "index": 0, "logprobs": None}]
        )
        + azure_chunk(
            [
                {
                    "finish_reason": None,
                    "index": 0,
                    "content_filter_results": FILTERS,
                    "content_filter_offsets": {"check_offset": 2, "start_offset": 2, "end_offset": 30},
                }
            ],
            created=0,
            id="",
            model="",
            object="",
        )
        + b"data: [DONE]\n\n"
    )
    azure.script(replay(stream, content_type="text/event-stream"))
    chunks = list(client.chat.completions.create(model="four", messages=USER, stream=True))
    assert [c.choices[0].delta.content for c in chunks] == ["", "Hi", None]
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, "stop"]
    assert {c.id for c in chunks} == {"chatcmpl-AnhIt2rw8vL8czymkCwEOKKTg7HPc"} and {c.model for c in chunks} == {
        "four"
    }


def test_tool_calls(client: openai.OpenAI, azure: FakeAzure) -> None:
    azure.script(reply(tool_calls=[tool_call("lookup", {"q": "x"})]))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    done = client.chat.completions.create(model="four", messages=USER, tools=tools)
    [call] = done.choices[0].message.tool_calls
    assert (call.function.name, call.function.arguments, done.choices[0].finish_reason) == (
        "lookup",
        '{"q": "x"}',
        "tool_calls",
    )
    assert azure.last_request.json["tools"] == tools


def test_a_prompt_refused_by_the_content_filter_is_400_content_filter(
    client: openai.OpenAI, azure: FakeAzure, spare: FakeOpenAI
) -> None:
    azure.script(status(400, CONTENT_FILTER_ERROR))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="four", messages=USER)
    assert caught.value.code == "content_filter" and caught.value.body == CONTENT_FILTER_ERROR["error"]
    assert spare.requests == []


def test_a_wrong_key_is_401(client: openai.OpenAI, azure: FakeAzure) -> None:
    azure.key = "another-key"
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="four", messages=USER)
    assert "Access denied due to invalid subscription key" in caught.value.message


def test_a_missing_deployment_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="az/gpt-35-turbo", messages=USER)
    assert "The API deployment for this resource does not exist" in caught.value.message


def test_rate_limits_fall_back(client: openai.OpenAI, azure: FakeAzure) -> None:
    azure.script(status(429, headers={"Retry-After": "45"}))
    raw = client.chat.completions.with_raw_response.create(model="four", messages=USER)
    assert raw.headers["x-llmmux-provider"] == "spare"


def provider(azure: FakeAzure, **extra: Any) -> AzureOpenAIProvider:
    config = ProviderConfig(
        name="az",
        type="azure",
        base_url=azure.url,
        api_key=KEY,
        extra=extra,  # type: ignore[arg-type]
        models=[],
    )
    return AzureOpenAIProvider(config, PROVIDER_TYPES["azure"])


async def test_health_probes_the_resource_with_the_api_version(azure: FakeAzure) -> None:
    az = provider(azure, api_version="2024-06-01")
    try:
        result = await az.health()
        models = await az.list_models()
    finally:
        await az.aclose()
    assert result.ok and result.url == f"{azure.url}/openai/models?api-version=2024-06-01"
    assert models == []


def test_an_entra_token_counts_as_a_credential() -> None:
    config = ProviderConfig(
        name="az", type="azure", base_url="https://r.openai.azure.com", extra={"azure_ad_token": TOKEN}
    )
    assert AzureOpenAIProvider(config, PROVIDER_TYPES["azure"]).validate_config() == []
    keyless = ProviderConfig(name="az", type="azure", base_url="https://r.openai.azure.com")
    assert AzureOpenAIProvider(keyless, PROVIDER_TYPES["azure"]).validate_config() == [
        "no API key: set AZURE_OPENAI_API_KEY"
    ]
