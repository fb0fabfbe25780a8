"""End to end: the official `openai` SDK -> llmmux -> fake OpenAI upstreams over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support import Gateway
from upstreams import (
    FakeOpenAI,
    closed_port_url,
    drop,
    drop_mid_stream,
    hang,
    malformed,
    reply,
    status,
    tool_call,
)

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def primary() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as up:
        yield up


@pytest.fixture
def backup() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(echo_prefix="backup: ") as up:
        yield up


def config(primary: FakeOpenAI, backup: FakeOpenAI, **server: Any) -> dict[str, Any]:
    return {
        "server": server,
        "providers": {
            "main": {
                "type": "openai_compatible",
                "base_url": primary.url,
                "timeout": 1.5,
                "models": [{"name": "upstream-model"}],
            },
            "spare": {"type": "openai_compatible", "base_url": backup.url, "models": ["spare-model"]},
            "gone": {"type": "openai_compatible", "base_url": closed_port_url()},
        },
        "routing": {
            "exact_matches": {
                "chat-main": {"provider": "main", "model": "upstream-model", "fallback": "spare"},
                "retrying": {
                    "provider": "main",
                    "model": "upstream-model",
                    "fallback": "spare",
                    "retry_attempts": 2,
                    "retry_delay_ms": 10,
                },
                "dead-first": {"provider": "gone", "model": "m", "fallback": ["chat-main"]},
                "lonely": {"provider": "main", "model": "upstream-model", "fallback": "none"},
            }
        },
    }


@pytest.fixture
def gateway(primary: FakeOpenAI, backup: FakeOpenAI) -> Iterator[Gateway]:
    with Gateway(config(primary, backup)) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=20) as sdk:
        yield sdk


def test_chat_completion_shows_public_model_and_who_answered(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="chat-main", messages=USER)
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.model == "chat-main"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert raw.headers["x-llmmux-provider"] == "main"
    assert raw.headers["x-llmmux-model"] == "upstream-model"
    assert raw.headers["x-llmmux-attempts"] == "1"
    assert primary.last_request.json["model"] == "upstream-model"


def test_every_request_field_reaches_the_upstream_unchanged(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    fields: dict[str, Any] = {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
        },
        "n": 2,
        "stop": ["\n\n"],
        "seed": 7,
        "logprobs": True,
        "top_logprobs": 2,
        "user": "u-1",
        "max_completion_tokens": 50,
        "temperature": 0.3,
        "parallel_tool_calls": False,
    }
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
            ],
        },
    ]
    client.chat.completions.create(model="chat-main", messages=messages, extra_body={"vendor_knob": 1}, **fields)
    sent = primary.last_request.json
    assert sent.pop("model") == "upstream-model"
    assert sent == {"messages": messages, "vendor_knob": 1, **fields}


def test_tool_calls_come_back_intact(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    primary.script(reply(tool_calls=[tool_call("get_weather", '{"city":"Paris"}'), tool_call("get_time", {})]))
    tools = [
        {"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
        for n in ("get_weather", "get_time")
    ]
    done = client.chat.completions.create(model="chat-main", messages=USER, tools=tools)
    calls = done.choices[0].message.tool_calls
    assert done.choices[0].finish_reason == "tool_calls"
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", '{"city":"Paris"}'),
        ("get_time", "{}"),
    ]


def test_streaming_matches_openai(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    with client.chat.completions.with_streaming_response.create(
        model="chat-main", messages=USER, stream=True, stream_options={"include_usage": True}
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-llmmux-provider"] == "main"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert {c.model for c in chunks} == {"chat-main"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_stream_usage_is_requested_but_only_shown_when_asked(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    chunks = list(client.chat.completions.create(model="chat-main", messages=USER, stream=True))
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert primary.last_request.json["stream_options"] == {"include_usage": True}


def test_streamed_tool_calls(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    primary.script(reply(tool_calls=[tool_call("get_weather", '{"city":"Oslo"}')]))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(client.chat.completions.create(model="chat-main", messages=USER, tools=tools, stream=True))
    deltas = [t for c in chunks for t in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    assert "".join(d.function.arguments or "" for d in deltas) == '{"city":"Oslo"}'


@pytest.mark.parametrize(
    "fault",
    [
        status(500),
        status(503),
        status(429, headers={"Retry-After": "20"}),
        drop(),
        drop(reset=True),
        malformed(),
        hang(5),
    ],
    ids=["500", "503", "429", "drop", "reset", "malformed", "hang"],
)
def test_retryable_failures_fall_back(
    client: openai.OpenAI, primary: FakeOpenAI, backup: FakeOpenAI, fault: Any
) -> None:
    primary.script(fault)
    raw = client.chat.completions.with_raw_response.create(model="chat-main", messages=USER)
    assert raw.parse().choices[0].message.content == "backup: hello there"
    assert raw.parse().model == "chat-main"
    assert raw.headers["x-llmmux-provider"] == "spare"
    assert raw.headers["x-llmmux-attempts"] == "2"
    assert backup.last_request.json["model"] == "upstream-model"


def test_connection_refused_falls_back(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="dead-first", messages=USER)
    assert raw.headers["x-llmmux-provider"] == "main"
    assert raw.parse().model == "dead-first"


def test_retry_same_candidate_with_backoff(client: openai.OpenAI, primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.script(status(503), status(502))
    raw = client.chat.completions.with_raw_response.create(model="retrying", messages=USER)
    assert raw.headers["x-llmmux-provider"] == "main"
    assert raw.headers["x-llmmux-attempts"] == "3"
    assert backup.requests == []


def test_retry_after_is_honoured(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    primary.script(status(429, headers={"Retry-After": "1"}))
    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model="retrying", messages=USER)
    assert time.monotonic() - started >= 0.95
    assert raw.headers["x-llmmux-provider"] == "main"


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_client_errors_pass_through_unretried(
    client: openai.OpenAI, primary: FakeOpenAI, backup: FakeOpenAI, code: int
) -> None:
    primary.script(status(code))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="chat-main", messages=USER)
    assert caught.value.status_code == code
    assert caught.value.body == primary_error_body(primary, code)
    assert backup.requests == []


def primary_error_body(primary: FakeOpenAI, code: int) -> Any:
    return primary.error_payload(code)["error"]


def test_stream_falls_back_before_the_first_byte(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    primary.script(status(503))
    chunks = list(client.chat.completions.create(model="chat-main", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "backup: hello there"


def test_stream_broken_after_first_byte_ends_with_an_error_event(client: openai.OpenAI, primary: FakeOpenAI) -> None:
    primary.script(drop_mid_stream(after_chunks=2))
    received = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in client.chat.completions.create(model="chat-main", messages=USER, stream=True):
            received.append(chunk)
    assert len(received) == 2


def test_all_candidates_failing_lists_every_attempt(gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.script(status(500))
    backup.script(status(502))
    response = httpx.post(f"{gateway.url}/chat/completions", json={"model": "chat-main", "messages": USER})
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "all_providers_failed"
    assert [(a["provider"], a["status"]) for a in error["attempts"]] == [("main", 500), ("spare", 502)]


def test_all_rate_limited_is_503_with_retry_after(gateway: Gateway, primary: FakeOpenAI, backup: FakeOpenAI) -> None:
    primary.script(status(429, headers={"Retry-After": "7"}))
    backup.script(status(429, headers={"Retry-After": "3"}))
    response = httpx.post(f"{gateway.url}/chat/completions", json={"model": "chat-main", "messages": USER})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"


def test_all_timing_out_is_504(gateway: Gateway, primary: FakeOpenAI) -> None:
    primary.script(hang(5))
    started = time.monotonic()
    response = httpx.post(f"{gateway.url}/chat/completions", json={"model": "lonely", "messages": USER}, timeout=10)
    assert response.status_code == 504
    assert time.monotonic() - started < 4


def test_models_and_health(gateway: Gateway) -> None:
    models = httpx.get(f"{gateway.url}/models").json()
    names = {m["id"] for m in models["data"]}
    assert {"chat-main", "retrying", "dead-first", "lonely", "upstream-model", "spare-model"} <= names
    assert httpx.get(f"{gateway.root_url}/health").json() == {"status": "ok"}
    with openai.OpenAI(base_url=gateway.url, api_key="x") as sdk:
        assert sdk.models.retrieve("chat-main").owned_by == "main"
