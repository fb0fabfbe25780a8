"""Bedrock end to end: the `openai` SDK -> llmmux -> a fake Bedrock that verifies every SigV4 signature."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmmux.config.model import ProviderConfig, Secret
from llmmux.providers.bedrock import BedrockProvider
from llmmux.providers.registry import PROVIDER_TYPES
from support import Gateway
from upstreams import FakeOpenAI, drop_mid_stream, malformed, reply, status, tool_call
from upstreams.bedrock_server import (
    FakeBedrock,
    bedrock_error,
    event_frame,
    exception_frame,
)
from upstreams.replay import replay
from upstreams.sigv4 import AwsCredentials

CREDENTIALS = AwsCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "FQoGZXIvYXdzEXAMPLE")
LONG_TERM = AwsCredentials("AKIAI44QH8DHBEXAMPLE", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")  # no session token
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
PROFILE = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
USER = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "top_song",
            "description": "Most played song",
            "parameters": {"type": "object", "properties": {"sign": {"type": "string"}}, "required": ["sign"]},
        },
    }
]
STREAM = "application/vnd.amazon.eventstream"


@pytest.fixture(scope="module", autouse=True)
def aws_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Credentials from the environment, plus a profile with the wrong secret; no instance metadata service."""
    folder = tmp_path_factory.mktemp("aws")
    (folder / "credentials").write_text(
        f"[wrong]\naws_access_key_id = {LONG_TERM.access_key}\naws_secret_access_key = not-the-secret\n"
        f"[long-term]\naws_access_key_id = {LONG_TERM.access_key}\naws_secret_access_key = {LONG_TERM.secret_key}\n"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS.access_key)
        patch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS.secret_key)
        patch.setenv("AWS_SESSION_TOKEN", CREDENTIALS.session_token or "")
        patch.setenv("AWS_REGION", "eu-west-3")
        patch.setenv("AWS_CONFIG_FILE", str(folder / "none"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for name in ("AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_BEARER_TOKEN_BEDROCK"):
            patch.delenv(name, raising=False)
        yield


# One gateway and one pair of fakes for the module; each test gets the fakes freshly reset.
@pytest.fixture(scope="module")
def servers(aws_environment: None) -> Iterator[tuple[FakeBedrock, FakeOpenAI]]:
    with (
        FakeBedrock(
            credentials=[CREDENTIALS, LONG_TERM],
            bearer_token="ABSKbedrock-api-key",
            region="eu-west-3",
            models=[MODEL, PROFILE],
        ) as bedrock,
        FakeOpenAI() as spare,
    ):
        yield bedrock, spare


@pytest.fixture(autouse=True)
def aws(servers: tuple[FakeBedrock, FakeOpenAI]) -> FakeBedrock:
    for server in servers:
        server.reset()
    return servers[0]


@pytest.fixture
def spare(servers: tuple[FakeBedrock, FakeOpenAI]) -> FakeOpenAI:
    return servers[1]


@pytest.fixture(scope="module")
def gateway(servers: tuple[FakeBedrock, FakeOpenAI]) -> Iterator[Gateway]:
    aws, openai_upstream = servers
    config = {
        "providers": {
            "aws": {"type": "bedrock", "base_url": aws.url, "models": [MODEL]},
            "aws-key": {"type": "bedrock", "base_url": aws.url, "api_key": "ABSKbedrock-api-key"},
            "aws-wrong": {"type": "bedrock", "base_url": aws.url, "profile": "wrong"},
            "aws-profile": {"type": "bedrock", "base_url": aws.url, "profile": "long-term"},
            "spare": {"type": "openai_compatible", "base_url": openai_upstream.url},
        },
        "routing": {
            "exact_matches": {
                "haiku": {"provider": "aws", "model": MODEL, "fallback": "none"},
                "haiku-or-spare": {"provider": "aws", "model": MODEL, "fallback": "spare"},
                "sonnet": {"provider": "aws", "model": PROFILE, "fallback": "none"},
                "keyed": {"provider": "aws-key", "model": MODEL, "fallback": "none"},
                "wrong-secret": {"provider": "aws-wrong", "model": MODEL, "fallback": "spare"},
                "profiled": {"provider": "aws-profile", "model": MODEL, "fallback": "none"},
            }
        },
    }
    with Gateway(config) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as sdk:
        yield sdk


def test_converse_signed_with_the_environment_credentials(client: openai.OpenAI, aws: FakeBedrock) -> None:
    done = client.chat.completions.create(model="haiku", messages=USER, max_tokens=40, temperature=0.2)
    assert done.choices[0].message.content == "echo: hello there"
    assert (done.choices[0].finish_reason, done.model) == ("stop", "haiku")
    assert done.usage is not None and (done.usage.prompt_tokens, done.usage.completion_tokens) == (4, 3)
    sent = aws.last_request
    assert sent.path == f"/model/{MODEL}/converse"
    authorization = sent.headers["Authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={CREDENTIALS.access_key}/")
    assert (
        "/eu-west-3/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
        "Signature=" in authorization
    )
    assert sent.headers["X-Amz-Security-Token"] == CREDENTIALS.session_token
    assert sent.json == {
        "messages": [{"role": "user", "content": [{"text": "hello there"}]}],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 40, "temperature": 0.2},
    }


def test_an_inference_profile_id_is_escaped_and_still_signed(client: openai.OpenAI, aws: FakeBedrock) -> None:
    assert client.chat.completions.create(model="sonnet", messages=USER).choices[0].message.content
    assert aws.last_request.path == f"/model/{PROFILE}/converse"


def test_a_bedrock_api_key_is_sent_as_a_bearer_token(client: openai.OpenAI, aws: FakeBedrock) -> None:
    client.chat.completions.create(model="keyed", messages=USER)
    assert aws.last_request.headers["Authorization"] == "Bearer ABSKbedrock-api-key"
    assert "X-Amz-Date" not in aws.last_request.headers


def test_converse_stream(client: openai.OpenAI, aws: FakeBedrock) -> None:
    chunks = list(
        client.chat.completions.create(
            model="haiku", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 7
    assert aws.last_request.path.endswith("/converse-stream")
    assert aws.last_request.headers["Accept"] == STREAM


def test_tool_calls_round_trip(client: openai.OpenAI, aws: FakeBedrock) -> None:
    aws.script(reply(tool_calls=[tool_call("top_song", {"sign": "WZPZ"})]))
    first = client.chat.completions.create(model="haiku", messages=USER, tools=TOOLS)
    [call] = first.choices[0].message.tool_calls
    assert (first.choices[0].finish_reason, call.function.name, call.function.arguments) == (
        "tool_calls",
        "top_song",
        '{"sign":"WZPZ"}',
    )
    assert aws.last_request.json["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {
        "json": TOOLS[0]["function"]["parameters"]
    }
    follow_up = [
        *USER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"song": "Elemental Hotel"}'},
    ]
    client.chat.completions.create(model="haiku", messages=follow_up, tools=TOOLS)
    assert aws.last_request.json["messages"][2] == {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": call.id,
                    "content": [{"json": {"song": "Elemental Hotel"}}],
                    "status": "success",
                }
            }
        ],
    }


def test_streamed_tool_calls(client: openai.OpenAI, aws: FakeBedrock) -> None:
    aws.script(reply(tool_calls=[tool_call("top_song", {"sign": "WKRP"})]))
    chunks = list(client.chat.completions.create(model="haiku", messages=USER, tools=TOOLS, stream=True))
    deltas = [t for c in chunks for t in c.choices[0].delta.tool_calls or ()]
    assert deltas[0].function.name == "top_song" and deltas[0].id.startswith("tooluse_")
    assert "".join(d.function.arguments or "" for d in deltas) == '{"sign": "WKRP"}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_named_profile_signs_with_its_own_long_term_keys(client: openai.OpenAI, aws: FakeBedrock) -> None:
    client.chat.completions.create(model="profiled", messages=USER)
    sent = aws.last_request
    assert sent.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={LONG_TERM.access_key}/")
    assert "X-Amz-Security-Token" not in sent.headers


def test_a_wrong_secret_fails_the_signature_check_and_is_not_retried(client: openai.OpenAI, spare: FakeOpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="wrong-secret", messages=USER)
    assert "signature we calculated does not match" in caught.value.message
    assert spare.requests == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (status(400), openai.BadRequestError),
        (status(403), openai.PermissionDeniedError),
        (status(404), openai.NotFoundError),
    ],
    ids=["ValidationException", "AccessDeniedException", "ResourceNotFoundException"],
)
def test_client_errors(client: openai.OpenAI, aws: FakeBedrock, fault: Any, error: Any) -> None:
    aws.script(fault)
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="haiku", messages=USER)
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    assert body["message"] == f"aws returned {fault.code}: {aws.error_payload(fault.code)['message']}"


def test_too_long_a_prompt_has_its_own_code(client: openai.OpenAI, aws: FakeBedrock) -> None:
    aws.script(status(400, bedrock_error(400, "Input is too long for requested model.").body))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="haiku", messages=USER)
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "code", [429, 424, 500, 503], ids=["Throttling", "ModelError", "InternalServer", "ServiceUnavailable"]
)
def test_retryable_errors_fall_back(client: openai.OpenAI, aws: FakeBedrock, code: int) -> None:
    aws.script(status(code))
    raw = client.chat.completions.with_raw_response.create(model="haiku-or-spare", messages=USER)
    assert raw.headers["x-llmmux-provider"] == "spare"


def test_a_throttling_exception_before_any_text_falls_back(client: openai.OpenAI, aws: FakeBedrock) -> None:
    aws.script(replay(exception_frame("throttlingException", "Too many requests"), content_type=STREAM))
    chunks = list(client.chat.completions.create(model="haiku-or-spare", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"


def test_an_exception_mid_stream_ends_it_with_an_error_event(client: openai.OpenAI, aws: FakeBedrock) -> None:
    frames = (
        event_frame("messageStart", {"role": "assistant"})
        + event_frame("contentBlockDelta", {"delta": {"text": "Hel"}, "contentBlockIndex": 0})
        + exception_frame("modelStreamErrorException", "The model stopped unexpectedly")
    )
    aws.script(replay(frames, content_type=STREAM))
    with pytest.raises(openai.APIError, match="modelStreamErrorException"):
        list(client.chat.completions.create(model="haiku", messages=USER, stream=True))


@pytest.mark.parametrize("fault", [drop_mid_stream(after_chunks=2), malformed(after_chunks=2)], ids=["cut", "garbage"])
def test_a_broken_stream_ends_with_an_error_event(client: openai.OpenAI, aws: FakeBedrock, fault: Any) -> None:
    aws.script(fault)
    received = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in client.chat.completions.create(model="haiku", messages=USER, stream=True):
            received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "echo: "


def test_a_frame_cut_in_half_is_a_broken_stream(client: openai.OpenAI, aws: FakeBedrock) -> None:
    frames = event_frame("messageStart", {"role": "assistant"}) + event_frame("messageStop", {"stopReason": "end_turn"})
    aws.script(replay(frames, content_type=STREAM, cut_after=len(frames) - 10))
    with pytest.raises(openai.APIError, match="mid-stream"):
        list(client.chat.completions.create(model="haiku", messages=USER, stream=True))


# -- the provider on its own --


def provider(aws: FakeBedrock, **config: Any) -> BedrockProvider:
    return BedrockProvider(
        ProviderConfig(name="aws", type="bedrock", base_url=aws.url, **config), PROVIDER_TYPES["bedrock"]
    )


async def test_list_models_and_health_are_signed_too(aws: FakeBedrock) -> None:
    bedrock = provider(aws)
    try:
        models = await bedrock.list_models()
        health = await bedrock.health()
    finally:
        await bedrock.aclose()
    assert [(m.id, m.owned_by) for m in models] == [(MODEL, "Anthropic"), (PROFILE, "Anthropic")]
    assert health.ok and health.url == aws.url + "/foundation-models?byOutputModality=TEXT"
    assert aws.last_request.query == {"byOutputModality": "TEXT"}


def test_region_and_endpoints_follow_aws_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    bedrock = BedrockProvider(ProviderConfig(name="aws", type="bedrock"), PROVIDER_TYPES["bedrock"])
    assert bedrock.region == "eu-west-3"
    assert bedrock.base_url() == "https://bedrock-runtime.eu-west-3.amazonaws.com"
    assert bedrock.control_url() == "https://bedrock.eu-west-3.amazonaws.com"
    assert bedrock._url(PROFILE, "converse") == (
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/us.anthropic.claude-3-5-sonnet-20241022-v2:0/converse"
    )
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3"
    assert "/model/arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.meta.llama3/" in bedrock._url(arn, "x")
    pinned = BedrockProvider(
        ProviderConfig(name="aws", type="bedrock", extra={"region": "ap-south-1"}), PROVIDER_TYPES["bedrock"]
    )
    assert pinned.base_url() == "https://bedrock-runtime.ap-south-1.amazonaws.com"
    assert bedrock.info()["auth"] == "sigv4"


def test_the_bearer_token_comes_from_aws_bearer_token_bedrock(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmmux.providers.registry import create_provider

    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSK-from-env")
    made = create_provider(ProviderConfig(name="aws", type="bedrock"))
    assert made.config.api_key == Secret("ABSK-from-env") and made.info()["auth"] == "api key"


async def test_without_botocore_or_a_key_the_provider_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, aws: FakeBedrock
) -> None:
    monkeypatch.setattr("llmmux.providers.bedrock.botocore_available", lambda: False)
    bedrock = provider(aws)
    assert any("pip install 'llmmux[bedrock]'" in p and p.startswith("no API key") for p in bedrock.validate_config())
    with pytest.raises(Exception, match="llmmux\\[bedrock\\]"):
        await bedrock.complete(_request(), MODEL)
    await bedrock.aclose()


def _request() -> Any:
    from llmmux.wire import openai as openai_wire

    return openai_wire.decode_chat_request({"model": "m", "messages": USER})
