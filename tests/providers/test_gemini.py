"""Gemini end to end: the official `openai` SDK -> llmmux -> a fake Gemini API over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmmux.config.model import ProviderConfig
from llmmux.providers.gemini import GeminiProvider
from llmmux.providers.registry import PROVIDER_TYPES
from support import Gateway
from upstreams import FakeOpenAI, drop_mid_stream, reply, status, tool_call
from upstreams.gemini_server import BAD_KEY_DETAILS, FakeGemini, gemini_error, sse
from upstreams.replay import replay

KEY = "AIzaSyFAKE-test-key-0000000000000000"
USER = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


# One gateway and one pair of fakes for the module (starting them is most of a test's time);
# each test gets the fakes freshly reset.
@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[FakeGemini, FakeOpenAI]]:
    with FakeGemini(api_key=KEY, thought_signature="c2lnbmF0dXJlLTE=") as gem, FakeOpenAI() as spare:
        yield gem, spare


@pytest.fixture(autouse=True)
def gemini(servers: tuple[FakeGemini, FakeOpenAI]) -> FakeGemini:
    for server in servers:
        server.reset()
    return servers[0]


@pytest.fixture
def spare(servers: tuple[FakeGemini, FakeOpenAI]) -> FakeOpenAI:
    return servers[1]


@pytest.fixture(scope="module")
def gateway(servers: tuple[FakeGemini, FakeOpenAI]) -> Iterator[Gateway]:
    gemini, openai_upstream = servers
    config = {
        "providers": {
            "gem": {"type": "gemini", "base_url": gemini.url, "api_key": KEY, "models": ["gemini-2.5-flash"]},
            "spare": {"type": "openai_compatible", "base_url": openai_upstream.url},
        },
        "routing": {
            "exact_matches": {
                "flash": {"provider": "gem", "model": "gemini-2.5-flash", "fallback": "none"},
                "flash-or-spare": {"provider": "gem", "model": "gemini-2.5-flash", "fallback": "spare"},
            }
        },
    }
    with Gateway(config) as gw:
        yield gw


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as sdk:
        yield sdk


def test_chat_completion_and_the_request_gemini_received(client: openai.OpenAI, gemini: FakeGemini) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="flash", messages=USER, temperature=0.3, max_tokens=50, stop=["\n\n"], seed=4
    )
    done = raw.parse()
    assert done.choices[0].message.content == "echo: hello there"
    assert (done.choices[0].finish_reason, done.model) == ("stop", "flash")
    assert done.usage is not None and (done.usage.prompt_tokens, done.usage.completion_tokens) == (4, 3)
    assert raw.headers["x-llmmux-provider"] == "gem"
    sent = gemini.last_request
    assert (sent.method, sent.path, dict(sent.query)) == ("POST", "/v1beta/models/gemini-2.5-flash:generateContent", {})
    assert sent.headers["x-goog-api-key"] == KEY and "Authorization" not in sent.headers
    assert sent.json == {
        "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 50, "stopSequences": ["\n\n"], "seed": 4},
    }


def test_streaming(client: openai.OpenAI, gemini: FakeGemini) -> None:
    chunks = list(
        client.chat.completions.create(
            model="flash", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    assert {c.model for c in chunks} == {"flash"}
    assert gemini.last_request.path.endswith(":streamGenerateContent")
    assert gemini.last_request.query == {"alt": "sse"}


def test_tool_calls_and_the_follow_up_turn_keep_gemini_3s_signature(client: openai.OpenAI, gemini: FakeGemini) -> None:
    gemini.script(
        reply(tool_calls=[tool_call("get_weather", {"city": "Paris"}), tool_call("get_weather", {"city": "Oslo"})])
    )
    first = client.chat.completions.create(model="flash", messages=USER, tools=TOOLS, tool_choice="required")
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_weather", '{"city":"Oslo"}'),
    ]
    declared = gemini.last_request.json["tools"][0]["functionDeclarations"][0]
    assert declared == {
        "name": "get_weather",
        "description": "Weather in a city",
        "parametersJsonSchema": TOOLS[0]["function"]["parameters"],
    }
    assert gemini.last_request.json["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    follow_up = [
        *USER,
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": '{"sky": "grey"}'},
    ]
    done = client.chat.completions.create(model="flash", messages=follow_up, tools=TOOLS)
    assert done.choices[0].message.content == "echo: hello there"
    model_turn, results = gemini.last_request.json["contents"][1:]
    assert model_turn["parts"][0] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": "c2lnbmF0dXJlLTE=",
    }
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"sky": "grey"}}},
        ],
    }


def test_streamed_tool_calls(client: openai.OpenAI, gemini: FakeGemini) -> None:
    gemini.script(reply(tool_calls=[tool_call("get_weather", {"city": "Oslo"})]))
    chunks = list(client.chat.completions.create(model="flash", messages=USER, tools=TOOLS, stream=True))
    deltas = [t for c in chunks for t in c.choices[0].delta.tool_calls or ()]
    assert [(d.index, d.function.name, d.function.arguments) for d in deltas] == [(0, "get_weather", '{"city":"Oslo"}')]
    assert deltas[0].id.endswith("__thought__c2lnbmF0dXJlLTE=")
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_safety_block_is_a_content_filter_finish(client: openai.OpenAI, gemini: FakeGemini) -> None:
    gemini.script(
        replay(
            b'{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": '
            b'{"promptTokenCount": 4, "totalTokenCount": 4}, "modelVersion": "gemini-2.5-flash"}'
        )
    )
    done = client.chat.completions.create(model="flash", messages=USER)
    assert (done.choices[0].message.content, done.choices[0].finish_reason) == (None, "content_filter")


def test_a_bad_key_is_401_and_not_retried(client: openai.OpenAI, gemini: FakeGemini, spare: FakeOpenAI) -> None:
    gemini.script(
        status(400, gemini_error(400, "API key not valid. Please pass a valid API key.", BAD_KEY_DETAILS).body)
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="flash-or-spare", messages=USER)
    assert "API key not valid" in caught.value.message
    assert spare.requests == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (status(404), openai.NotFoundError),
        (status(400), openai.BadRequestError),
        (status(403), openai.PermissionDeniedError),
    ],
    ids=["404", "400", "403"],
)
def test_client_errors_arrive_in_openai_shape(
    client: openai.OpenAI, gemini: FakeGemini, fault: Any, error: Any
) -> None:
    gemini.script(fault)
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="flash", messages=USER)
    body = caught.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    assert body["message"].startswith(f"gem returned {fault.code}: ")


def test_context_too_long_has_its_own_code(client: openai.OpenAI, gemini: FakeGemini) -> None:
    gemini.script(
        status(
            400,
            gemini_error(
                400, "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."
            ).body,
        )
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="flash", messages=USER)
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "fault",
    [
        status(500),
        status(503),
        status(
            429,
            gemini_error(429).body
            | {
                "error": {
                    **gemini_error(429).body["error"],
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "53s"}],
                }
            },
        ),
    ],
    ids=["500", "503", "429-retry-info"],
)
def test_retryable_errors_fall_back(client: openai.OpenAI, gemini: FakeGemini, fault: Any) -> None:
    gemini.script(fault)
    raw = client.chat.completions.with_raw_response.create(model="flash-or-spare", messages=USER)
    assert raw.headers["x-llmmux-provider"] == "spare"
    assert raw.headers["x-llmmux-attempts"] == "2"


def test_a_stream_cut_mid_way_ends_with_an_error_event(client: openai.OpenAI, gemini: FakeGemini) -> None:
    gemini.script(drop_mid_stream(after_chunks=1))
    received = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in client.chat.completions.create(model="flash", messages=USER, stream=True):
            received.append(chunk)
    assert [c.choices[0].delta.content for c in received] == ["echo: "]


def test_a_stream_that_stops_before_finishing_is_cut_too(client: openai.OpenAI, gemini: FakeGemini) -> None:
    unfinished = sse({"candidates": [{"content": {"parts": [{"text": "half"}], "role": "model"}, "index": 0}]})
    gemini.script(replay(unfinished, content_type="text/event-stream"))
    with pytest.raises(openai.APIError, match="before a finish reason"):
        list(client.chat.completions.create(model="flash", messages=USER, stream=True))


def test_an_error_event_before_the_first_chunk_falls_back(client: openai.OpenAI, gemini: FakeGemini) -> None:
    gemini.script(replay(sse(gemini_error(503).body), content_type="text/event-stream"))
    chunks = list(client.chat.completions.create(model="flash-or-spare", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello there"


# -- the provider on its own --


def provider(gemini: FakeGemini, **config: Any) -> GeminiProvider:
    return GeminiProvider(
        ProviderConfig(name="gem", type="gemini", base_url=gemini.url, **config), PROVIDER_TYPES["gemini"]
    )


async def test_list_models_follows_pages_and_keeps_generative_models() -> None:
    with FakeGemini(api_key=KEY, page_size=2) as gemini:
        gem = provider(gemini, api_key=KEY)
        try:
            models = await gem.list_models()
        finally:
            await gem.aclose()
        assert [r.query.get("pageToken") for r in gemini.requests] == [None, "2"]
    assert [(m.id, m.context_length, m.owned_by) for m in models] == [
        ("gemini-2.5-flash", 1048576, "google"),
        ("gemini-2.5-pro", 1048576, "google"),
    ]


async def test_health_probes_the_model_list_with_the_key(gemini: FakeGemini) -> None:
    gem = provider(gemini, api_key=KEY)
    try:
        result = await gem.health()
    finally:
        await gem.aclose()
    assert result.ok and result.url == gemini.url + "/models"
    assert gemini.last_request.headers["x-goog-api-key"] == KEY


def test_the_key_comes_from_gemini_api_key_or_google_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmmux.providers.registry import create_provider

    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-google")
    assert create_provider(ProviderConfig(name="g", type="gemini")).config.api_key == "from-google"
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini")
    assert create_provider(ProviderConfig(name="g", type="gemini")).config.api_key == "from-gemini"
