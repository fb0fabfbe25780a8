"""POST /v1/embeddings through llmmux, with the official SDK, float and base64."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from support import Gateway
from upstreams import FakeOpenAI, fake_embedding, status


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as first, FakeOpenAI() as second:
        yield first, second


@pytest.fixture
def sdk(upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> Iterator[openai.OpenAI]:
    first, second = upstreams
    config = {
        "providers": {
            "a": {"type": "openai_compatible", "base_url": first.url, "models": ["embed-small"]},
            "b": {"type": "openai_compatible", "base_url": second.url},
        },
        "routing": {"exact_matches": {"embedder": {"provider": "a", "model": "embed-small", "fallback": "b"}}},
    }
    with Gateway(config) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as client:
        yield client


def test_list_of_strings_with_dimensions(sdk: openai.OpenAI, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    done = sdk.embeddings.create(model="embedder", input=["alpha", "beta"], dimensions=4, encoding_format="float")
    assert done.model == "embedder"
    assert [d.index for d in done.data] == [0, 1]
    assert done.data[1].embedding == pytest.approx(fake_embedding("beta", 4), rel=1e-6)
    sent = upstreams[0].last_request.json
    assert (sent["model"], sent["input"], sent["dimensions"]) == ("embed-small", ["alpha", "beta"], 4)


def test_base64_is_what_the_sdk_uses_by_default(sdk: openai.OpenAI) -> None:
    # The SDK asks for base64 and decodes it itself; values must survive the round trip.
    done = sdk.embeddings.create(model="embedder", input="gamma")
    assert done.data[0].embedding == pytest.approx(fake_embedding("gamma", 8), rel=1e-6)


def test_token_arrays_and_fallback(sdk: openai.OpenAI, upstreams: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    upstreams[0].script(status(503), path="/v1/embeddings")
    raw = sdk.embeddings.with_raw_response.create(model="embedder", input=[[1, 2, 3]], encoding_format="float")
    assert raw.headers["x-llmmux-provider"] == "b"
    assert upstreams[1].last_request.json["input"] == [[1, 2, 3]]


def test_bad_input_is_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="embedder", input="", encoding_format="float")
    assert caught.value.body["param"] == "input"  # type: ignore[index]
