"""The `ollama` and `ollama_cloud` provider types against a fake Ollama over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmmux.config.model import ModelEntry, ProviderConfig
from llmmux.errors import (
    InvalidRequest,
    UpstreamBadResponse,
    UpstreamClientError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from llmmux.providers.ollama import OllamaProvider, api_root
from llmmux.providers.registry import PROVIDER_TYPES, create_provider
from llmmux.types import ChatChunk, ChatRequest, ImagePart, Message, TextPart, Tool, ToolCall
from llmmux.wire import openai as openai_wire
from upstreams import Status, closed_port_url, drop_mid_stream, hang, malformed, status, tool_call
from upstreams.ollama_server import FakeOllama, answer, error_line_after

PNG = "iVBORw0KGgoAAAANSUhEUgAAAG0AAABmCAYAAADBPx+VAAAACXBIWXMAAAsTAAALEwEAmpwYAAAAAXNSR0IArs4c6QAAAARnQU1BAACxjwv8YQUA"
MODEL = "llama3.2:latest"


fake = FakeOllama.fixture()


def make(url: str, kind: str = "ollama", **settings: Any) -> OllamaProvider:
    provider = create_provider(ProviderConfig(name="local", type=kind, base_url=url, **settings))
    assert isinstance(provider, OllamaProvider)
    return provider


@pytest.fixture
async def provider(fake: FakeOllama) -> AsyncIterator[OllamaProvider]:
    provider = make(fake.url)
    yield provider
    await provider.aclose()


def ask(text: str = "why is the sky blue?", **fields: Any) -> ChatRequest:
    return ChatRequest(model="chat-main", messages=[Message(role="user", content=text)], **fields)


async def collect(provider: OllamaProvider, request: ChatRequest) -> list[ChatChunk]:
    return [chunk async for chunk in provider.stream(request, MODEL)]


# -- chat --


async def test_complete_sends_a_documented_chat_body_and_reads_the_reply(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    request = openai_wire.decode_chat_request(
        {
            "model": "chat-main",
            "messages": [
                {"role": "system", "content": "be brief"},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    ],
                },
            ],
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 7,
            "stop": "END",
            "max_tokens": 64,
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "response_format": {"type": "json_object"},
            "num_ctx": 16384,
            "keep_alive": "30m",
            "think": False,
        }
    )
    response = await provider.complete(request, MODEL)

    sent = fake.last()
    assert (sent.method, sent.path, sent.headers["Content-Type"]) == ("POST", "/api/chat", "application/json")
    assert "Authorization" not in sent.headers
    body = sent.json
    assert (body["model"], body["stream"], body["format"], body["keep_alive"], body["think"]) == (
        MODEL,
        False,
        "json",
        "30m",
        False,
    )
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "what is this?", "images": [PNG]},
    ]
    assert body["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["END"],
        "num_predict": 64,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "num_ctx": 16384,
    }
    assert set(body) == {"model", "stream", "messages", "options", "format", "keep_alive", "think"}

    choice = response.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("Echo: what is this?", "stop")
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 4)  # type: ignore[union-attr]
    assert (response.model, response.raw_wire) == (MODEL, "ollama")


async def test_tools_go_out_as_documented_and_tool_calls_come_back(fake: FakeOllama, provider: OllamaProvider) -> None:
    weather = Tool(
        name="get_current_weather",
        description="Get the weather",
        parameters={"type": "object", "properties": {"location": {"type": "string"}}},
    )
    history = [
        Message(role="user", content="weather in Paris?"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="call_1", name="get_current_weather", arguments='{"location": "Paris"}')],
        ),
        Message(role="tool", tool_call_id="call_1", content="22C"),
        Message(role="user", content=[TextPart("and in Rome?")]),
    ]
    fake.script(answer("", tool_calls=[tool_call("get_current_weather", {"location": "Rome"})]))
    response = await provider.complete(ChatRequest(model="m", messages=history, tools=[weather]), MODEL)

    body = fake.last().json
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the weather",
                "parameters": weather.parameters,
            },
        }
    ]
    assert body["messages"][1:3] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_current_weather", "arguments": {"location": "Paris"}}}],
        },
        {"role": "tool", "content": "22C", "tool_name": "get_current_weather"},
    ]
    (call,) = response.choices[0].message.tool_calls or []
    assert (call.name, json.loads(call.arguments)) == ("get_current_weather", {"location": "Rome"})
    assert response.choices[0].finish_reason == "tool_calls"


async def test_stream_reads_ndjson_into_deltas_a_finish_and_usage(fake: FakeOllama, provider: OllamaProvider) -> None:
    fake.script(answer("The sky is blue", thinking="Rayleigh scattering", chunks=3))
    chunks = await collect(provider, ask())
    assert fake.last().json["stream"] is True
    deltas = [c.choices[0].delta for c in chunks if c.choices and c.choices[0].finish_reason is None]
    assert deltas[0].role == "assistant" and deltas[0].reasoning == "Rayleigh scattering"
    assert "".join(d.content or "" for d in deltas) == "The sky is blue" and len(deltas) == 4
    finish, usage = chunks[-2:]
    assert finish.choices[0].finish_reason == "stop"
    assert (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (5, 4)  # type: ignore[union-attr]


async def test_streamed_tool_calls_arrive_whole(fake: FakeOllama, provider: OllamaProvider) -> None:
    calls = [tool_call("a", {"x": 1}), tool_call("b", {"y": [2]})]
    fake.script(answer("", tool_calls=calls))
    chunks = await collect(provider, ask())
    deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert [(t.index, t.name, json.loads(t.arguments or "")) for t in deltas] == [
        (0, "a", {"x": 1}),
        (1, "b", {"y": [2]}),
    ]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"


async def test_a_length_cut_answer_finishes_as_length(fake: FakeOllama, provider: OllamaProvider) -> None:
    fake.script(answer("partial", done_reason="length"))
    assert (await collect(provider, ask()))[-2].choices[0].finish_reason == "length"


async def test_the_library_builds_it_by_type_name_and_takes_openai_style_arguments(fake: FakeOllama) -> None:
    provider = create_provider("ollama", base_url=fake.url)
    reply = await provider.chat(MODEL, [{"role": "user", "content": "hi"}], max_tokens=8, num_ctx=4096, keep_alive=0)
    await provider.aclose()
    assert reply.choices[0].message.content == "Echo: hi"
    sent = fake.last().json
    assert (sent["options"], sent["keep_alive"]) == ({"num_predict": 8, "num_ctx": 4096}, 0)


# -- failures --


@pytest.mark.parametrize(
    ("behaviour", "kind", "text"),
    [
        (status(400, {"error": "invalid options: temperature"}), UpstreamClientError, "invalid options: temperature"),
        (status(500), UpstreamServerError, "llama runner process has terminated: exit status 2"),
        (status(503), UpstreamServerError, "server busy, please try again.  maximum pending requests exceeded"),
        (
            status(429, {"error": "you have reached your hourly usage limit"}, headers={"Retry-After": "7"}),
            UpstreamRateLimited,
            "you have reached your hourly usage limit",
        ),
        (status(502, b"<html>bad gateway</html>"), UpstreamServerError, "<html>bad gateway</html>"),
    ],
)
async def test_error_statuses_map_onto_the_error_tree(
    fake: FakeOllama, provider: OllamaProvider, behaviour: Status, kind: type[UpstreamError], text: str
) -> None:
    fake.script(behaviour, behaviour)
    with pytest.raises(kind) as caught:
        await provider.complete(ask(), MODEL)
    error = caught.value
    assert (error.upstream_status, error.provider) == (behaviour.code, "local")
    assert error.message == f"local returned {behaviour.code}: {text}"
    assert error.retry_after == (7.0 if behaviour.code == 429 else None)
    with pytest.raises(kind):  # a stream fails the same way, before its first chunk
        await collect(provider, ask())


async def test_an_unknown_model_is_the_upstreams_404_not_retried(provider: OllamaProvider) -> None:
    with pytest.raises(UpstreamClientError) as caught:
        await provider.complete(ask(), "nope:latest")
    error = caught.value
    assert (error.status, error.type, error.retryable) == (404, "not_found_error", False)
    assert error.message == "local returned 404: model 'nope:latest' not found, try pulling it first"


async def test_a_stream_cut_mid_way_is_a_bad_response_after_the_chunks_it_sent(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    fake.script(drop_mid_stream(2, content="one two three four", chunks=4))
    received: list[ChatChunk] = []
    with pytest.raises(UpstreamBadResponse):
        async for chunk in provider.stream(ask(), MODEL):
            received.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in received) == "one two th"  # 2 lines of 5 characters


async def test_an_error_line_mid_stream_is_a_server_error(fake: FakeOllama, provider: OllamaProvider) -> None:
    fake.script(error_line_after(1, "an error was encountered while running the model: CUDA error"))
    received: list[ChatChunk] = []
    with pytest.raises(UpstreamServerError, match="CUDA error"):
        async for chunk in provider.stream(ask(), MODEL):
            received.append(chunk)
    assert len(received) == 1


async def test_a_garbage_line_is_a_bad_response(fake: FakeOllama, provider: OllamaProvider) -> None:
    fake.script(malformed(1))
    with pytest.raises(UpstreamBadResponse, match="not an Ollama chat reply"):
        await collect(provider, ask())


async def test_a_stream_that_ends_without_its_done_line_is_a_bad_response(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    fake.script(status(200, b'{"model":"m","message":{"role":"assistant","content":"hi"},"done":false}\n'))
    with pytest.raises(UpstreamBadResponse, match="before its final"):
        await collect(provider, ask())


async def test_an_unreachable_or_silent_server_fails_with_connect_and_timeout_errors(fake: FakeOllama) -> None:
    gone = make(closed_port_url(""))
    with pytest.raises(UpstreamConnectError):
        await gone.complete(ask(), MODEL)
    await gone.aclose()
    slow = make(fake.url, timeout=0.3)
    fake.script(hang(2))
    with pytest.raises(UpstreamTimeout):
        await slow.complete(ask(), MODEL)
    fake.script(hang(2), path="/api/tags")
    with pytest.raises(UpstreamTimeout):  # the provider's timeout holds for GETs too
        await slow.list_models()
    await slow.aclose()


# -- models --


async def test_list_models_reports_sizes_families_quantization_and_context(fake: FakeOllama) -> None:
    provider = make(fake.url, models=[ModelEntry(name="qwen2.5-coder:7b", context_length=4096)])
    fake.script(status(500), path="/api/show")  # the first model's details are unavailable
    models = {m.id: m for m in await provider.list_models()}
    await provider.aclose()
    assert set(models) == {"llama3.2:latest", "qwen2.5-coder:7b"}
    shown = [r.json["model"] for r in fake.requests_to("/api/show")]
    assert sorted(shown) == ["llama3.2:latest", "qwen2.5-coder:7b"]
    failed_for, answered_for = shown
    contexts = {"llama3.2:latest": 8192, "qwen2.5-coder:7b": 32768}
    assert models[answered_for].context_length == contexts[answered_for]
    assert models[failed_for].context_length == (4096 if failed_for == "qwen2.5-coder:7b" else None)
    qwen = models["qwen2.5-coder:7b"]
    assert (qwen.size, qwen.family, qwen.quantization, qwen.size_bytes, qwen.provider) == (
        "7.6B",
        "qwen2",
        "Q4_K_M",
        4_683_087_332,
        "local",
    )


async def test_health_and_version(fake: FakeOllama, provider: OllamaProvider) -> None:
    health = await provider.health()
    assert (health.ok, health.status, health.url) == (True, 200, fake.url + "/api/tags")
    fake.script(status(500), path="/api/tags")
    assert not (await provider.health()).ok
    assert await provider.version() == "0.12.6"


async def test_pull_streams_progress_until_success_and_the_model_is_then_listed(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    progress = [p async for p in provider.pull("mistral:7b")]
    assert fake.last("/api/pull").json == {"model": "mistral:7b", "stream": True}
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    layer = [p for p in progress if p.total == 4_113_301_824]
    assert [p.completed for p in layer] == [None, 1_371_100_608, 2_742_201_216, 4_113_301_824]
    assert "mistral:7b" in {m.id for m in await provider.list_models()}


async def test_pull_failures(fake: FakeOllama, provider: OllamaProvider) -> None:
    with pytest.raises(UpstreamServerError, match="pull model manifest: file does not exist"):
        [p async for p in provider.pull("no-such-model")]
    fake.script(drop_mid_stream(3), path="/api/pull")
    with pytest.raises(UpstreamBadResponse):
        [p async for p in provider.pull("mistral:7b")]
    [p async for p in provider.pull("mistral:7b", insecure=True)]
    assert fake.last("/api/pull").json == {"model": "mistral:7b", "stream": True, "insecure": True}


async def test_delete_removes_a_model_and_a_missing_one_is_a_404(fake: FakeOllama, provider: OllamaProvider) -> None:
    await provider.delete("llama3.2:latest")
    sent = fake.last("/api/delete")
    assert (sent.method, sent.json) == ("DELETE", {"model": "llama3.2:latest"})
    assert "llama3.2:latest" not in {m.id for m in await provider.list_models()}
    with pytest.raises(UpstreamClientError, match="model 'llama3.2:latest' not found") as caught:
        await provider.delete("llama3.2:latest")
    assert caught.value.status == 404


# -- Ollama Cloud and base URLs --


async def test_the_cloud_preset_sends_the_key_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    row = PROVIDER_TYPES["ollama_cloud"]
    assert (row.base_url, row.env_var, row.health_endpoint, row.cloud) == (
        "https://ollama.com",
        "OLLAMA_API_KEY",
        "/api/tags",
        True,
    )
    monkeypatch.setenv("OLLAMA_API_KEY", "sk-cloud-123")
    with FakeOllama(api_key="sk-cloud-123") as cloud:
        provider = make(cloud.url, "ollama_cloud")
        assert provider.validate_config() == []
        reply = await provider.complete(ask("hello"), MODEL)
        assert reply.choices[0].message.content == "Echo: hello"
        assert [m async for m in provider.stream(ask(), MODEL)]
        assert (await provider.health()).ok
        assert {r.headers["Authorization"] for r in cloud.requests} == {"Bearer sk-cloud-123"}
        assert "sk-cloud-123" not in repr(provider.config) and provider.info()["api_key"] == "set"
        await provider.aclose()


async def test_the_cloud_without_a_key_is_flagged_and_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    with FakeOllama(api_key="sk-cloud-123") as cloud:
        provider = make(cloud.url, "ollama_cloud")
        assert provider.validate_config() == ["no API key: set OLLAMA_API_KEY"]
        with pytest.raises(UpstreamClientError, match="unauthorized") as caught:
            await provider.complete(ask(), MODEL)
        assert (caught.value.status, caught.value.type) == (401, "authentication_error")
        await provider.aclose()


@pytest.mark.parametrize(
    ("base", "api"),
    [
        ("http://127.0.0.1:11434", "http://127.0.0.1:11434/api"),
        ("http://127.0.0.1:11434/", "http://127.0.0.1:11434/api"),
        ("http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/api"),
        ("https://ollama.com/api", "https://ollama.com/api"),
        ("http://gpu-box/ollama", "http://gpu-box/ollama/api"),
    ],
)
def test_the_api_root_is_found_from_any_usual_base_url(base: str, api: str) -> None:
    assert api_root(base) == api
    assert make(base).health_url() == api + "/tags"


async def test_a_request_ollama_cannot_take_is_refused_before_anything_is_sent(
    fake: FakeOllama, provider: OllamaProvider
) -> None:
    request = ChatRequest(model="m", messages=[Message(role="user", content=[ImagePart(url="https://x/cat.png")])])
    with pytest.raises(InvalidRequest, match="not links"):
        await provider.complete(request, MODEL)
    assert fake.requests == []
