"""Bedrock embeddings: Titan and Cohere through InvokeModel, signed with SigV4, against a fake Bedrock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmmux.config.model import ProviderConfig
from llmmux.errors import (
    InvalidRequest,
    NotSupported,
    UpstreamBadResponse,
    UpstreamClientError,
    UpstreamRateLimited,
)
from llmmux.providers.bedrock import BedrockProvider
from llmmux.providers.registry import PROVIDER_TYPES
from llmmux.types import EmbeddingRequest
from support import Gateway
from upstreams import fake_embedding, status
from upstreams.bedrock_server import FakeBedrock, bedrock_error
from upstreams.sigv4 import AwsCredentials

CREDENTIALS = AwsCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzEXAMPLE")
TITAN = "amazon.titan-embed-text-v2:0"
COHERE = "cohere.embed-english-v3"
TITAN_PATH = f"/model/{TITAN}/invoke"  # recorded decoded; sent as `%3A`
COHERE_PATH = f"/model/{COHERE}/invoke"


@pytest.fixture(scope="module")
def module_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeBedrock]:
    """Credentials from the environment only (no profile files, no instance metadata)."""
    folder = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS.access_key)
        patch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS.secret_key)
        patch.setenv("AWS_SESSION_TOKEN", CREDENTIALS.session_token or "")
        patch.setenv("AWS_REGION", "eu-west-3")
        patch.setenv("AWS_CONFIG_FILE", str(folder / "none"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "none"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK"):
            patch.delenv(name, raising=False)
        with FakeBedrock(
            credentials=[CREDENTIALS],
            region="eu-west-3",
            models=[TITAN, COHERE, "anthropic.claude-3-haiku-20240307-v1:0"],
        ) as up:
            yield up


@pytest.fixture
def aws(module_aws: FakeBedrock) -> FakeBedrock:
    module_aws.reset()
    return module_aws


def provider(aws: FakeBedrock, **config: Any) -> BedrockProvider:
    return BedrockProvider(
        ProviderConfig(name="aws", type="bedrock", base_url=aws.url, **config), PROVIDER_TYPES["bedrock"]
    )


async def embed(aws: FakeBedrock, model: str, inputs: list[str] | list[list[int]], **fields: Any) -> Any:
    bedrock = provider(aws, extra=fields.pop("config", {}))
    try:
        return await bedrock.embed(EmbeddingRequest(model="public", inputs=inputs, **fields), model)
    finally:
        await bedrock.aclose()


async def test_titan_one_signed_call_per_text(aws: FakeBedrock) -> None:
    done = await embed(aws, TITAN, ["hello world", "one", "two three four"], dimensions=256)
    sent = aws.requests_to(TITAN_PATH)
    assert len(sent) == 3
    assert all(
        r.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={CREDENTIALS.access_key}/") for r in sent
    )
    assert sorted((r.json["inputText"], r.json["dimensions"], r.json["normalize"]) for r in sent) == [
        ("hello world", 256, True),
        ("one", 256, True),
        ("two three four", 256, True),
    ]
    assert all(set(r.json) == {"inputText", "dimensions", "normalize"} for r in sent)
    assert done.vectors == [fake_embedding(t, 256) for t in ("hello world", "one", "two three four")]
    # Titan counts tokens itself (the fake: one a word): 2 + 1 + 3, not an estimate.
    assert done.usage is not None and (done.usage.prompt_tokens, done.usage.estimated) == (6, False)


async def test_titan_without_dimensions_sends_none(aws: FakeBedrock) -> None:
    done = await embed(aws, TITAN, ["x"])
    assert aws.last_request.json == {"inputText": "x", "normalize": True}
    assert len(done.vectors[0]) == 1024


async def test_cohere_batches_of_96_in_order_with_estimated_usage(aws: FakeBedrock) -> None:
    texts = [f"doc {i}" for i in range(100)]
    done = await embed(aws, COHERE, texts)
    sent = aws.requests_to(COHERE_PATH)
    assert sorted(len(r.json["texts"]) for r in sent) == [4, 96]
    assert all(set(r.json) == {"texts", "input_type"} and r.json["input_type"] == "search_document" for r in sent)
    assert done.vectors == [fake_embedding(t, 1024) for t in texts]
    # Cohere reports no tokens: ceil(5 / 4) or ceil(6 / 4) per text, marked as an estimate.
    assert done.usage is not None and (done.usage.prompt_tokens, done.usage.estimated) == (200, True)


async def test_cohere_input_type_from_extra(aws: FakeBedrock) -> None:
    await embed(aws, COHERE, ["q"], extra={"input_type": "search_query"})
    assert aws.last_request.json == {"texts": ["q"], "input_type": "search_query"}


async def test_a_smaller_configured_batch_size_applies_to_cohere(aws: FakeBedrock) -> None:
    await embed(aws, COHERE, ["a", "b", "c"], config={"embedding_batch_size": 2})
    assert sorted(len(r.json["texts"]) for r in aws.requests_to(COHERE_PATH)) == [1, 2]


async def test_cohere_v4_floats_by_type(aws: FakeBedrock) -> None:
    aws.script(
        status(200, {"id": "x", "embeddings": {"float": [[0.5, 0.25]]}, "response_type": "embeddings_by_type"}),
        path=COHERE_PATH,
    )
    done = await embed(aws, COHERE, ["a"])
    assert done.vectors == [[0.5, 0.25]]


async def test_other_models_and_token_arrays_are_refused_without_a_call(aws: FakeBedrock) -> None:
    with pytest.raises(NotSupported, match="not a Titan or Cohere embedding model"):
        await embed(aws, "anthropic.claude-3-haiku-20240307-v1:0", ["a"])
    with pytest.raises(InvalidRequest) as caught:
        await embed(aws, TITAN, [[1, 2]])
    assert caught.value.param == "input"
    assert aws.requests == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (
            status(429, bedrock_error(429).body, headers={"x-amzn-ErrorType": "ThrottlingException:http://internal"}),
            UpstreamRateLimited,
        ),
        (
            status(
                400,
                bedrock_error(400, "Malformed input request: #/dimensions: 100 is not a valid enum value").body,
                headers={"x-amzn-ErrorType": "ValidationException:http://internal"},
            ),
            UpstreamClientError,
        ),
    ],
)
async def test_errors_are_classified(aws: FakeBedrock, fault: Any, error: type[Exception]) -> None:
    aws.script(fault, path=TITAN_PATH)
    with pytest.raises(error):
        await embed(aws, TITAN, ["a"])


async def test_the_fakes_own_validation_error_reaches_the_caller(aws: FakeBedrock) -> None:
    with pytest.raises(UpstreamClientError, match="not a valid enum value"):
        await embed(aws, TITAN, ["a"], dimensions=100)


async def test_a_malformed_reply_is_a_bad_response(aws: FakeBedrock) -> None:
    aws.script(status(200, {"embeddings": [[0.1]]}), path=COHERE_PATH)
    with pytest.raises(UpstreamBadResponse, match="1 float embeddings for 2 texts"):
        await embed(aws, COHERE, ["a", "b"])


def test_openai_sdk_end_to_end(aws: FakeBedrock) -> None:
    config = {"providers": {"aws": {"type": "bedrock", "base_url": aws.url, "models": [TITAN, COHERE]}}}
    with Gateway(config) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk:
        titan = sdk.embeddings.create(model=TITAN, input=["alpha beta", "gamma"], dimensions=512)
        cohere = sdk.embeddings.create(model=COHERE, input="delta", encoding_format="float")
    assert [d.embedding for d in titan.data] == [
        pytest.approx(fake_embedding(t, 512), rel=1e-6) for t in ("alpha beta", "gamma")
    ]
    assert titan.usage.prompt_tokens == 3
    assert cohere.data[0].embedding == pytest.approx(fake_embedding("delta", 1024), rel=1e-6)
    assert len(aws.requests_to(TITAN_PATH)) == 2 and len(aws.requests_to(COHERE_PATH)) == 1
