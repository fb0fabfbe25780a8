"""Gemini embeddings: batchEmbedContents against a fake Gemini, and through llmmux with the `openai` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmmux.config.model import ProviderConfig
from llmmux.errors import (
    InvalidRequest,
    UpstreamBadResponse,
    UpstreamClientError,
    UpstreamRateLimited,
)
from llmmux.providers.gemini import GeminiProvider
from llmmux.providers.registry import PROVIDER_TYPES
from llmmux.types import EmbeddingRequest
from support import Gateway
from upstreams import fake_embedding, status
from upstreams.gemini_server import FakeGemini, gemini_error

KEY = "gemini-test-key"
MODEL = "text-embedding-004"
PATH = f"/v1beta/models/{MODEL}:batchEmbedContents"


@pytest.fixture(scope="module")
def module_gemini() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as up:
        yield up


@pytest.fixture
def gemini(module_gemini: FakeGemini) -> FakeGemini:
    module_gemini.reset()
    return module_gemini


def provider(gemini: FakeGemini, **config: Any) -> GeminiProvider:
    return GeminiProvider(
        ProviderConfig(name="gem", type="gemini", base_url=gemini.url, api_key=KEY, **config), PROVIDER_TYPES["gemini"]
    )


def request(inputs: list[str] | list[list[int]], **fields: Any) -> EmbeddingRequest:
    return EmbeddingRequest(model="public", inputs=inputs, **fields)


async def test_the_request_field_by_field_and_estimated_usage(gemini: FakeGemini) -> None:
    gem = provider(gemini)
    try:
        done = await gem.embed(
            request(["hello world", "abc"], dimensions=4, extra={"taskType": "RETRIEVAL_DOCUMENT"}), MODEL
        )
    finally:
        await gem.aclose()
    sent = gemini.last_request
    assert (sent.method, sent.path, sent.headers["x-goog-api-key"]) == ("POST", PATH, KEY)
    assert sent.json == {
        "requests": [
            {
                "model": f"models/{MODEL}",
                "content": {"parts": [{"text": t}]},
                "outputDimensionality": 4,
                "taskType": "RETRIEVAL_DOCUMENT",
            }
            for t in ("hello world", "abc")
        ]
    }
    assert done.model == MODEL
    assert done.vectors == [fake_embedding(t, 4) for t in ("hello world", "abc")]
    # Gemini reports no tokens: ceil(11 / 4) + ceil(3 / 4), marked as an estimate.
    assert done.usage is not None and (done.usage.prompt_tokens, done.usage.estimated) == (4, True)


async def test_dimensions_left_out_are_not_sent(gemini: FakeGemini) -> None:
    gem = provider(gemini)
    try:
        done = await gem.embed(request(["x"]), MODEL)
    finally:
        await gem.aclose()
    assert gemini.last_request.json["requests"][0] == {
        "model": f"models/{MODEL}",
        "content": {"parts": [{"text": "x"}]},
    }
    assert len(done.vectors[0]) == 8  # the fake's default size


async def test_batches_of_100_by_default_joined_in_order(gemini: FakeGemini) -> None:
    texts = [f"t{i}" for i in range(205)]
    gem = provider(gemini)
    try:
        done = await gem.embed(request(texts), MODEL)
    finally:
        await gem.aclose()
    sizes = sorted(len(r.json["requests"]) for r in gemini.requests_to(PATH))
    assert sizes == [5, 100, 100]
    assert done.vectors == [fake_embedding(t, 8) for t in texts]
    assert done.usage is not None and done.usage.estimated and done.usage.prompt_tokens == 205


async def test_a_configured_batch_size_wins(gemini: FakeGemini) -> None:
    gem = provider(gemini, extra={"embedding_batch_size": 2})
    try:
        await gem.embed(request(["a", "b", "c"]), MODEL)
    finally:
        await gem.aclose()
    assert sorted(len(r.json["requests"]) for r in gemini.requests_to(PATH)) == [1, 2]


async def test_token_arrays_are_refused_before_any_call(gemini: FakeGemini) -> None:
    gem = provider(gemini)
    try:
        with pytest.raises(InvalidRequest) as caught:
            await gem.embed(request([[1, 2, 3]]), MODEL)
    finally:
        await gem.aclose()
    assert caught.value.param == "input"
    assert gemini.requests == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (status(429, gemini_error(429).body), UpstreamRateLimited),
        (
            status(400, gemini_error(400, "* BatchEmbedContentsRequest.requests[0].output_dimensionality: bad\n").body),
            UpstreamClientError,
        ),
    ],
)
async def test_errors_are_classified(gemini: FakeGemini, fault: Any, error: type[Exception]) -> None:
    gemini.script(fault, path=PATH)
    gem = provider(gemini)
    try:
        with pytest.raises(error):
            await gem.embed(request(["a"]), MODEL)
    finally:
        await gem.aclose()


async def test_a_reply_with_the_wrong_count_is_a_bad_response(gemini: FakeGemini) -> None:
    gemini.script(status(200, {"embeddings": [{"values": [0.5]}]}), path=PATH)
    gem = provider(gemini)
    try:
        with pytest.raises(UpstreamBadResponse, match="1 embeddings for 2 inputs"):
            await gem.embed(request(["a", "b"]), MODEL)
    finally:
        await gem.aclose()


def test_openai_sdk_end_to_end(gemini: FakeGemini) -> None:
    config = {"providers": {"gem": {"type": "gemini", "base_url": gemini.url, "api_key": KEY, "models": [MODEL]}}}
    with Gateway(config) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk:
        done = sdk.embeddings.create(model=MODEL, input=["alpha", "beta"], dimensions=4)
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.embeddings.create(model=MODEL, input=[[1, 2]], encoding_format="float")
    assert [d.embedding for d in done.data] == [
        pytest.approx(fake_embedding(t, 4), rel=1e-6) for t in ("alpha", "beta")
    ]
    assert done.usage.prompt_tokens == 3  # ceil(5 / 4) + ceil(4 / 4), estimated
    assert caught.value.body["param"] == "input"  # type: ignore[index]
    assert [len(r.json["requests"]) for r in gemini.requests_to(PATH)] == [2]
