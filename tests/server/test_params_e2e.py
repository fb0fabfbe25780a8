"""End to end: parameter aliases, dropped parameters and strict routes, through the openai SDK."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from support import Gateway
from upstreams import FakeOpenAI

USER = [{"role": "user", "content": "hello there"}]


# One gateway and two fakes for the module; each test gets the fakes freshly reset.
@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as cloud, FakeOpenAI(echo_prefix="local: ") as local:
        yield cloud, local


@pytest.fixture(autouse=True)
def openai_upstream(servers: tuple[FakeOpenAI, FakeOpenAI]) -> FakeOpenAI:
    for server in servers:
        server.reset()
    return servers[0]


@pytest.fixture(scope="module")
def gateway(servers: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[Gateway]:
    cloud, local = servers
    with Gateway(
        {
            "providers": {
                # `type: openai` honours OpenAI's parameters only; a generic server honours them all.
                "cloud": {"type": "openai", "base_url": cloud.url, "api_key": "sk-test-000000000000"},
                "local": {"type": "openai_compatible", "base_url": local.url},
            },
            "routing": {
                "exact_matches": {
                    "loose": {"provider": "cloud", "model": "gpt-4o-mini"},
                    "exacting": {"provider": "cloud", "model": "gpt-4o-mini", "strict": True, "fallback": "local"},
                    "exacting-alone": {"provider": "cloud", "model": "gpt-4o-mini", "strict": True, "fallback": "none"},
                }
            },
        }
    ) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_aliases_reach_the_upstream_under_their_canonical_names(
    client: openai.OpenAI, openai_upstream: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="loose", messages=USER, extra_body={"temp": 0.25, "max_length": 5, "nucleus_sampling": 0.5}
    )
    sent = openai_upstream.last_request.json
    assert (sent["temperature"], sent["max_tokens"], sent["top_p"]) == (0.25, 5, 0.5)
    assert not {"temp", "max_length", "nucleus_sampling"} & set(sent)
    assert "x-llmmux-dropped-params" not in raw.headers


def test_parameters_the_provider_cannot_honour_are_dropped_and_named(
    client: openai.OpenAI, openai_upstream: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="loose", messages=USER, temperature=0.1, extra_body={"top_k": 4, "ctx_size": 8192}
    )
    assert raw.parse().choices[0].message.content == "echo: hello there"
    assert raw.headers["x-llmmux-dropped-params"] == "top_k, num_ctx"
    sent = openai_upstream.last_request.json
    assert sent["temperature"] == 0.1 and not {"top_k", "num_ctx", "ctx_size"} & set(sent)


def test_dropped_parameters_are_named_on_streams_too(client: openai.OpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="loose", messages=USER, stream=True, extra_body={"top_k": 4}
    ) as response:
        assert response.headers["x-llmmux-dropped-params"] == "top_k"
        assert "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices) == "echo: hello there"


def test_a_strict_route_skips_candidates_that_would_drop_parameters(
    client: openai.OpenAI, servers: tuple[FakeOpenAI, FakeOpenAI], openai_upstream: FakeOpenAI
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="exacting", messages=USER, extra_body={"top_k": 4})
    assert raw.headers["x-llmmux-provider"] == "local"
    assert servers[1].last_request.json["top_k"] == 4
    assert openai_upstream.requests == []


def test_a_strict_route_with_nobody_able_answers_400(client: openai.OpenAI, openai_upstream: FakeOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="exacting-alone", messages=USER, extra_body={"ctx_size": 4096})
    error = caught.value.body
    assert isinstance(error, dict) and error["param"] == "num_ctx"
    assert error["message"] == (
        "Model 'exacting-alone' is routed strictly and no candidate honours every parameter: "
        "cloud cannot honour num_ctx."
    )
    assert openai_upstream.requests == []


def test_a_strict_route_serves_requests_it_can_honour(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="exacting-alone", messages=USER, seed=3)
    assert raw.headers["x-llmmux-provider"] == "cloud"


def test_contradicting_aliases_are_a_400_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="loose", messages=USER, temperature=0.2, extra_body={"temp": 0.9})
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "temp"
