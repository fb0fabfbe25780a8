"""The Ollama API in front: the official `ollama` client against OpenAI- and Ollama-format backends."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import ollama
import pytest

from support import Gateway
from upstreams import FakeOpenAI, reply, tool_call
from upstreams.ollama_server import FakeOllama

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def openai_backend() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as up:
        yield up


@pytest.fixture
def ollama_backend() -> Iterator[FakeOllama]:
    with FakeOllama() as up:
        yield up


@pytest.fixture
def gateway(openai_backend: FakeOpenAI, ollama_backend: FakeOllama) -> Iterator[Gateway]:
    config = {
        "providers": {
            "vllm": {
                "type": "openai_compatible",
                "base_url": openai_backend.url,
                "models": [
                    {"name": "qwen-coder", "size": "7B", "context_length": 32768, "quantization": "AWQ"},
                    "embed-small",
                ],
            },
            "local": {"type": "ollama", "base_url": ollama_backend.url, "models": ["llama3.2:latest"]},
        },
        "routing": {"exact_matches": {"chat-main": {"provider": "vllm", "model": "qwen-coder"}}},
    }
    with Gateway(config) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway) -> Iterator[ollama.Client]:
    sdk = ollama.Client(host=gateway.root_url)
    yield sdk
    sdk._client.close()


def test_chat_on_an_openai_backend(client: ollama.Client, openai_backend: FakeOpenAI) -> None:
    reply = client.chat(model="chat-main", messages=USER, stream=False, options={"temperature": 0.1, "num_predict": 40})
    assert reply.message.content == "echo: hello there"
    assert reply.model == "chat-main" and reply.done and reply.done_reason == "stop"
    assert reply.eval_count == 3
    sent = openai_backend.last_request.json
    assert (sent["model"], sent["temperature"], sent["max_tokens"]) == ("qwen-coder", 0.1, 40)
    assert "keep_alive" not in sent and "options" not in sent


def test_streamed_chat_ends_with_a_done_line(client: ollama.Client) -> None:
    parts = list(client.chat(model="chat-main", messages=USER, stream=True))
    assert "".join(p.message.content or "" for p in parts) == "echo: hello there"
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].done_reason == "stop" and parts[-1].eval_count == 3


def test_chat_on_an_ollama_backend_passes_ollama_fields(client: ollama.Client, ollama_backend: FakeOllama) -> None:
    reply = client.chat(model="llama3.2:latest", messages=USER, keep_alive="10m", options={"num_ctx": 4096})
    assert reply.message.content
    sent = ollama_backend.last_request.json
    assert sent["keep_alive"] == "10m" and sent["options"]["num_ctx"] == 4096


def test_generate_streaming_and_not(client: ollama.Client) -> None:
    whole = client.generate(model="chat-main", prompt="hello there", system="be brief")
    assert whole.response == "echo: hello there" and whole.done
    parts = list(client.generate(model="chat-main", prompt="a b c", stream=True))
    assert "".join(p.response for p in parts) == "echo: a b c" and parts[-1].done


def test_tools_round_trip(client: ollama.Client, openai_backend: FakeOpenAI) -> None:
    openai_backend.script(reply(tool_calls=[tool_call("get_weather", '{"city":"Oslo"}')]))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    answer = client.chat(model="chat-main", messages=USER, tools=tools)
    calls = answer.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [("get_weather", {"city": "Oslo"})]
    assert openai_backend.last_request.json["tools"][0]["function"]["name"] == "get_weather"


def test_list_show_and_version(client: ollama.Client) -> None:
    names = {m.model for m in client.list().models}
    assert {"chat-main", "qwen-coder", "embed-small", "llama3.2:latest"} <= names
    coder = next(m for m in client.list().models if m.model == "qwen-coder")
    assert coder.details.parameter_size == "7B" and coder.details.quantization_level == "AWQ"
    assert client.show("qwen-coder").modelinfo["llmmux.context_length"] == 32768
    assert client.show("llama3.2:latest").modelinfo  # forwarded to the Ollama backend
    assert httpx.get(str(client._client.base_url.join("/api/version"))).json()["version"]


def test_embed_and_legacy_embeddings(client: ollama.Client) -> None:
    assert len(client.embed(model="embed-small", input=["a", "b"]).embeddings) == 2
    assert len(client.embeddings(model="embed-small", prompt="a").embedding) == 8


def test_pull_and_delete_are_forwarded(client: ollama.Client, ollama_backend: FakeOllama) -> None:
    statuses = [p.status for p in client.pull("mistral:7b", stream=True)]
    assert statuses[-1] == "success"
    assert ollama_backend.requests_to("/api/pull")
    client.delete("mistral:7b")
    assert ollama_backend.last_request.path == "/api/delete"


def test_errors_in_ollama_shape(gateway: Gateway, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as missing:
        client.chat(model="nope", messages=USER)
    assert missing.value.status_code == 404 and "nope" in missing.value.error
    bad = httpx.post(gateway.root_url + "/api/chat", content=b"{nope")
    assert bad.status_code == 400 and set(bad.json()) == {"error"}
    empty = httpx.post(gateway.root_url + "/api/chat", json={"model": "chat-main", "messages": []})
    assert empty.status_code == 400 and "messages" in empty.json()["error"]
    assert httpx.get(gateway.root_url + "/").text == "Ollama is running"


def test_ndjson_stream_shape(gateway: Gateway) -> None:
    with httpx.stream(
        "POST", gateway.root_url + "/api/chat", json={"model": "chat-main", "messages": USER}
    ) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [msgspec.json.decode(line) for line in response.iter_lines() if line]
    assert all(set(line) >= {"model", "created_at", "message", "done"} for line in lines)
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert set(lines[-1]) >= {"done_reason", "total_duration", "prompt_eval_count", "eval_count", "eval_duration"}
