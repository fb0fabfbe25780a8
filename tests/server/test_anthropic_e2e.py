"""End to end: the official `openai` SDK -> llmmux (uvicorn) -> a fake Anthropic API.

Every hop is real HTTP on 127.0.0.1: what the SDK sends is decoded by the gateway,
translated to Anthropic's Messages API, answered by the fake in Anthropic's wire format,
and translated back into what the SDK expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from support import Gateway
from upstreams.anthropic_server import (
    API_KEY,
    FakeAnthropic,
    error_event,
    overloaded,
    prompt_too_long,
    reply,
    tool_call,
)

PUBLIC = "chat-claude"
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeAnthropic) -> Iterator[str]:
    config = {
        "providers": {
            "claude": {
                "type": "anthropic",
                "base_url": upstream.url,
                "api_key": API_KEY,
                "models": [{"name": "claude-sonnet-4-5"}, {"name": "claude-haiku-4-5"}],
            }
        },
        "routing": {
            "exact_matches": {
                PUBLIC: {"provider": "claude", "model": "claude-sonnet-4-5", "fallback": ["claude/claude-haiku-4-5"]}
            }
        },
    }
    with Gateway(config) as gw:
        yield gw.url


@pytest.fixture
def client(gateway: str, upstream: FakeAnthropic) -> Iterator[openai.OpenAI]:
    upstream.reset()
    with openai.OpenAI(base_url=gateway, api_key="unused", max_retries=0, timeout=10) as sdk:
        yield sdk


def test_chat_completion(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    upstream.script(reply("Bonjour !", usage={"input_tokens": 20, "cache_read_input_tokens": 100}))
    raw = client.chat.completions.with_raw_response.create(
        model=PUBLIC,
        messages=[{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Say hello"}],
    )
    completion = raw.parse()
    assert completion.model == PUBLIC
    assert completion.choices[0].message.content == "Bonjour !"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (120, 2)
    assert completion.usage.prompt_tokens_details.cached_tokens == 100  # type: ignore[union-attr]
    assert (raw.headers["x-llmmux-provider"], raw.headers["x-llmmux-model"]) == ("claude", "claude-sonnet-4-5")
    assert upstream.last_request.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": "Answer in French.",
        "messages": [{"role": "user", "content": "Say hello"}],
    }


def test_tool_call_round_trip(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    scripted = tool_call("get_weather", {"city": "Paris"}, id="toolu_01A")
    upstream.script(reply("Let me check.", tool_calls=[scripted]), reply("It is 18C in Paris."))
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model=PUBLIC, messages=messages, tools=[WEATHER_TOOL], tool_choice="required"
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function"
    assert (first.choices[0].finish_reason, call.id, call.function.name) == ("tool_calls", "toolu_01A", "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert upstream.last_request.json["tool_choice"] == {"type": "any"}
    assert upstream.last_request.json["tools"][0]["input_schema"] == WEATHER_TOOL["function"]["parameters"]

    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    second = client.chat.completions.create(model=PUBLIC, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == "It is 18C in Paris."
    assert upstream.last_request.json["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"}]},
    ]


def test_streaming_text_with_usage(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    upstream.script(reply("Streaming works end to end."))
    stream = client.chat.completions.create(
        model=PUBLIC, messages=[{"role": "user", "content": "Go"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert upstream.last_request.json["stream"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Streaming works end to end."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert {c.model for c in chunks} == {PUBLIC}


def test_streaming_tool_calls(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    upstream.script(
        reply(
            tool_calls=[
                tool_call("get_weather", {"city": "Oslo"}, id="toolu_01A"),
                tool_call("get_weather", {"city": "Lima"}, id="toolu_01B"),
            ]
        )
    )
    stream = client.chat.completions.create(
        model=PUBLIC, messages=[{"role": "user", "content": "Oslo and Lima?"}], tools=[WEATHER_TOOL], stream=True
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for t in choice.delta.tool_calls or ():
                call = calls.setdefault(t.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += t.id or ""
                call["name"] += (t.function.name or "") if t.function else ""
                call["arguments"] += (t.function.arguments or "") if t.function else ""
    assert finish == "tool_calls"
    assert {i: (c["id"], c["name"], json.loads(c["arguments"])) for i, c in calls.items()} == {
        0: ("toolu_01A", "get_weather", {"city": "Oslo"}),
        1: ("toolu_01B", "get_weather", {"city": "Lima"}),
    }


def test_overloaded_upstream_falls_back(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    upstream.script(overloaded(), reply("From the fallback."))
    raw = client.chat.completions.with_raw_response.create(model=PUBLIC, messages=[{"role": "user", "content": "Hi"}])
    assert raw.parse().choices[0].message.content == "From the fallback."
    assert (raw.headers["x-llmmux-model"], raw.headers["x-llmmux-attempts"]) == ("claude-haiku-4-5", "2")
    assert [r.json["model"] for r in upstream.requests] == ["claude-sonnet-4-5", "claude-haiku-4-5"]


def test_error_event_before_content_falls_back_in_a_stream(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    upstream.script(error_event(2, content="lost"), reply("Recovered."))
    stream = client.chat.completions.create(model=PUBLIC, messages=[{"role": "user", "content": "Hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Recovered."
    assert len(upstream.requests) == 2


def test_prompt_too_long_is_a_context_length_error_without_fallback(
    client: openai.OpenAI, upstream: FakeAnthropic
) -> None:
    upstream.script(prompt_too_long())
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=PUBLIC, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.code == "context_length_exceeded"
    assert "prompt is too long" in caught.value.message
    assert len(upstream.requests) == 1


def test_every_candidate_overloaded(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    upstream.script(overloaded(), overloaded())
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=PUBLIC, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 502
    assert "overloaded_error" in caught.value.message
    assert API_KEY not in caught.value.message


def test_invalid_tool_arguments_are_refused_before_the_upstream(client: openai.OpenAI, upstream: FakeAnthropic) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{oops"}}],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "18C"},
    ]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=PUBLIC, messages=messages)
    assert caught.value.param == "messages[1].tool_calls[0].function.arguments"
    assert upstream.requests == []
