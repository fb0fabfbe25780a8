"""End to end: the official `openai` SDK -> llmmux (uvicorn on a free port) -> a fake Ollama (or Ollama Cloud)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from support import Gateway
from upstreams import drop_mid_stream, status, tool_call
from upstreams.ollama_server import FakeOllama, answer

WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def ollama_provider(url: str, kind: str = "ollama", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "base_url": url, "models": [{"name": "llama3.2:latest"}], **extra}


fake = FakeOllama.fixture()


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[openai.OpenAI]:
    config = {
        "providers": {"local": ollama_provider(fake.url)},
        "routing": {
            "exact_matches": {
                "chat-main": {"provider": "local", "model": "llama3.2:latest"},
                "missing": {"provider": "local", "model": "not-pulled:latest", "fallback": "none"},
            }
        },
    }
    with Gateway(config) as gateway, openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_a_chat_completion_reaches_ollama_as_a_native_request(fake: FakeOllama, client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chat-main",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}],
        temperature=0.3,
        max_tokens=50,
        seed=4,
        extra_body={"num_ctx": 8192, "keep_alive": "10m"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hi there"
    assert completion.choices[0].finish_reason == "stop" and completion.model == "chat-main"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 3)  # type: ignore[union-attr]
    assert (raw.headers["x-llmmux-provider"], raw.headers["x-llmmux-model"]) == ("local", "llama3.2:latest")
    sent = fake.last().json
    assert (sent["model"], sent["stream"], sent["keep_alive"]) == ("llama3.2:latest", False, "10m")
    assert sent["options"] == {"temperature": 0.3, "seed": 4, "num_predict": 50, "num_ctx": 8192}
    assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


def test_a_stream_arrives_as_openai_chunks_with_usage(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script(answer("The sky is blue because of Rayleigh scattering", chunks=4))
    stream = client.chat.completions.create(
        model="chat-main",
        messages=[{"role": "user", "content": "why?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "The sky is blue because of Rayleigh scattering"
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 8
    assert {c.model for c in chunks} == {"chat-main"} and fake.last().json["stream"] is True


def test_tool_calls_round_trip_without_streaming(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script(answer("", tool_calls=[tool_call("get_weather", {"city": "Paris"})]))
    first = client.chat.completions.create(
        model="chat-main", tools=[WEATHER], messages=[{"role": "user", "content": "weather in Paris?"}]
    )
    choice = first.choices[0]
    (call,) = choice.message.tool_calls or []
    assert choice.finish_reason == "tool_calls" and call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    assert fake.last().json["tools"] == [WEATHER]

    second = client.chat.completions.create(
        model="chat-main",
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "22C and sunny"},
        ],
    )
    assert second.choices[0].message.content == "Echo: weather in Paris?"
    assert fake.last().json["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "content": "22C and sunny", "tool_name": "get_weather"},
    ]


def test_tool_calls_stream_as_openai_deltas(fake: FakeOllama, client: openai.OpenAI) -> None:
    scripted = [tool_call("get_weather", {"city": "Paris"}), tool_call("get_weather", {"city": "Rome"})]
    fake.script(answer("", tool_calls=scripted))
    chunks = list(
        client.chat.completions.create(
            model="chat-main", tools=[WEATHER], stream=True, messages=[{"role": "user", "content": "Paris and Rome?"}]
        )
    )
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    named = [(t.index, t.function.name, json.loads(t.function.arguments or "")) for t in calls if t.function]
    assert named == [(0, "get_weather", {"city": "Paris"}), (1, "get_weather", {"city": "Rome"})]
    assert all(t.id and t.type == "function" for t in calls)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_ollama_errors_reach_the_client_in_openais_shape(fake: FakeOllama, client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body == {  # not Ollama's {"error": "..."}: an OpenAI client could not read that
        "message": "local returned 404: model 'not-pulled:latest' not found, try pulling it first",
        "type": "not_found_error",
        "param": None,
        "code": None,
    }
    fake.script(status(400, {"error": "invalid options"}))
    with pytest.raises(openai.BadRequestError, match="invalid options"):
        client.chat.completions.create(model="chat-main", messages=[{"role": "user", "content": "hi"}])


def test_a_stream_cut_mid_way_ends_with_an_error_event(fake: FakeOllama, client: openai.OpenAI) -> None:
    fake.script(drop_mid_stream(2, content="one two three four", chunks=4))
    received: list[str] = []
    with pytest.raises(openai.APIError, match="failed mid-stream"):
        for chunk in client.chat.completions.create(
            model="chat-main", stream=True, messages=[{"role": "user", "content": "count"}]
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "one two th"


def test_ollama_cloud_with_its_bearer_key_and_a_fallback_from_a_busy_local_server(
    fake: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-cloud-e2e")
    with FakeOllama(api_key="sk-cloud-e2e") as cloud:
        config = {
            "providers": {"local": ollama_provider(fake.url), "cloud": ollama_provider(cloud.url, "ollama_cloud")},
            "routing": {
                "exact_matches": {
                    "big": {"provider": "cloud", "model": "llama3.2:latest"},
                    "chat-main": {
                        "provider": "local",
                        "model": "llama3.2:latest",
                        "fallback": ["cloud/llama3.2:latest"],
                    },
                }
            },
        }
        with Gateway(config) as gateway, openai.OpenAI(base_url=gateway.url, api_key="x", max_retries=0) as sdk:
            reply = sdk.chat.completions.create(model="big", messages=[{"role": "user", "content": "hello cloud"}])
            assert reply.choices[0].message.content == "Echo: hello cloud"
            fake.script(status(503))
            raw = sdk.chat.completions.with_raw_response.create(
                model="chat-main", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
            assert text == "Echo: hi"
            assert (raw.headers["x-llmmux-provider"], raw.headers["x-llmmux-attempts"]) == ("cloud", "2")
        assert [r.headers.get("Authorization") for r in cloud.requests] == ["Bearer sk-cloud-e2e"] * 2
        assert all("Authorization" not in r.headers for r in fake.requests)
