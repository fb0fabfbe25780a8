"""The Anthropic Messages API in front: the official `anthropic` SDK against every backend format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from support import Gateway
from upstreams import FakeOpenAI, drop_mid_stream, reply, tool_call
from upstreams.anthropic_server import API_KEY, FakeAnthropic
from upstreams.ollama_server import FakeOllama

MASTER = "sk-llmmux-master-000111"
USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def backends() -> Iterator[tuple[FakeOpenAI, FakeOllama, FakeAnthropic]]:
    with FakeOpenAI() as openai_up, FakeOllama() as ollama_up, FakeAnthropic() as claude_up:
        yield openai_up, ollama_up, claude_up


@pytest.fixture
def gateway(backends: tuple[FakeOpenAI, FakeOllama, FakeAnthropic]) -> Iterator[Gateway]:
    openai_up, ollama_up, claude_up = backends
    config = {
        "server": {"master_key": MASTER},
        "providers": {
            "vllm": {"type": "openai_compatible", "base_url": openai_up.url, "models": ["qwen-coder"]},
            "local": {"type": "ollama", "base_url": ollama_up.url, "models": ["llama3.2:latest"]},
            "claude": {
                "type": "anthropic",
                "base_url": claude_up.url,
                "api_key": API_KEY,
                "models": ["claude-sonnet-4-5"],
            },
        },
        # A public alias: the SDK warns about the upstream's own (dated) model name.
        "routing": {"exact_matches": {"claude-main": {"provider": "claude", "model": "claude-sonnet-4-5"}}},
    }
    with Gateway(config) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    # The SDK sends the key as x-api-key, as Claude Code does.
    with anthropic.Anthropic(base_url=gateway.root_url, api_key=MASTER, max_retries=0) as sdk:
        yield sdk


@pytest.mark.parametrize("model", ["qwen-coder", "llama3.2:latest", "claude-main"])
def test_messages_on_every_backend(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(
        model=model, max_tokens=100, messages=USER, system=[{"type": "text", "text": "be brief"}]
    )
    assert message.model == model
    assert message.role == "assistant" and message.type == "message"
    assert message.content[0].type == "text" and "hello there" in message.content[0].text
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model", ["qwen-coder", "llama3.2:latest", "claude-main"])
def test_streaming_helpers_on_every_backend(client: anthropic.Anthropic, model: str) -> None:
    with client.messages.stream(model=model, max_tokens=100, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "hello there" in text
    assert final.content[0].text == text and final.stop_reason == "end_turn"


def test_tools_both_ways_on_an_openai_backend(client: anthropic.Anthropic, backends: Any) -> None:
    openai_up = backends[0]
    openai_up.script(reply(tool_calls=[tool_call("get_weather", '{"city":"Oslo"}')]))
    tools = [
        {
            "name": "get_weather",
            "description": "Weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    first = client.messages.create(model="qwen-coder", max_tokens=100, messages=USER, tools=tools)
    use = next(b for b in first.content if b.type == "tool_use")
    assert (use.name, use.input, first.stop_reason) == ("get_weather", {"city": "Oslo"}, "tool_use")
    follow_up = [
        *USER,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    client.messages.create(model="qwen-coder", max_tokens=100, messages=follow_up, tools=tools)
    sent = openai_up.last_request.json["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny"}


def test_streamed_tool_use(client: anthropic.Anthropic, backends: Any) -> None:
    backends[0].script(reply(tool_calls=[tool_call("get_weather", '{"city":"Rome"}')]))
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    with client.messages.stream(model="qwen-coder", max_tokens=50, messages=USER, tools=tools) as stream:
        final = stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert use.input == {"city": "Rome"} and final.stop_reason == "tool_use"


def test_event_sequence_is_anthropics(gateway: Gateway) -> None:
    events = []
    with httpx.stream(
        "POST",
        gateway.root_url + "/v1/messages",
        headers={"x-api-key": MASTER},
        json={"model": "qwen-coder", "max_tokens": 10, "stream": True, "messages": USER},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
    assert events[0] == "message_start" and events[1] == "content_block_start"
    assert set(events[2:-3]) == {"content_block_delta"}
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_failure_mid_stream_is_an_error_event(client: anthropic.Anthropic, backends: Any) -> None:
    backends[0].script(drop_mid_stream(after_chunks=2))
    with (
        pytest.raises(anthropic.APIStatusError, match="mid-stream"),
        client.messages.stream(model="qwen-coder", max_tokens=50, messages=USER) as stream,
    ):
        "".join(stream.text_stream)


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="qwen-coder", messages=[{"role": "user", "content": "x" * 400}])
    assert counted.input_tokens == 100


def test_errors_in_anthropics_shape(gateway: Gateway, client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="claude-nope", max_tokens=10, messages=USER)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="qwen-coder", max_tokens=10, messages=[{"role": "robot", "content": "x"}])  # type: ignore[typeddict-item]
    assert bad.value.body["type"] == "error"  # type: ignore[index]
    response = httpx.post(
        gateway.root_url + "/v1/messages", json={"model": "qwen-coder"}, headers={"x-api-key": "wrong-key"}
    )
    assert response.status_code == 401
    assert response.json() == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Incorrect API key provided."},
    }
