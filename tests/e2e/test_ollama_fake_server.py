"""The fake Ollama speaks what the official `ollama` client expects: its fidelity is what the provider tests rest on."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest

from upstreams import status, tool_call
from upstreams.ollama_server import FakeOllama, answer


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    with FakeOllama() as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    client = ollama.Client(host=fake.url)
    yield client
    client._client.close()


def test_chat_replies_parse_in_the_official_client(fake: FakeOllama, client: ollama.Client) -> None:
    reply = client.chat(model="llama3.2:latest", messages=[{"role": "user", "content": "why is the sky blue?"}])
    assert reply.message.content == "Echo: why is the sky blue?"
    assert reply.done and reply.done_reason == "stop"
    assert (reply.prompt_eval_count, reply.eval_count) == (5, 6)
    assert fake.last().json["stream"] is False


def test_streams_and_tool_calls_parse_in_the_official_client(fake: FakeOllama, client: ollama.Client) -> None:
    fake.script(answer("", tool_calls=[tool_call("get_weather", {"city": "Paris"})]))
    parts = list(client.chat(model="llama3.2:latest", messages=[{"role": "user", "content": "weather?"}], stream=True))
    assert parts[-1].done and parts[-1].eval_count == 0
    calls = [c for p in parts for c in p.message.tool_calls or ()]
    assert calls[0].function.name == "get_weather" and calls[0].function.arguments == {"city": "Paris"}


def test_model_management_parses_in_the_official_client(fake: FakeOllama, client: ollama.Client) -> None:
    assert [m.model for m in client.list().models] == ["llama3.2:latest", "qwen2.5-coder:7b"]
    assert (client.show("qwen2.5-coder:7b").modelinfo or {})["qwen2.context_length"] == 32768
    statuses = [p.status for p in client.pull("mistral:7b", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"
    assert client.delete("mistral:7b").status == "success"
    with pytest.raises(ollama.ResponseError) as missing:
        client.delete("mistral:7b")
    assert missing.value.status_code == 404


def test_errors_parse_in_the_official_client(fake: FakeOllama, client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as unknown:
        client.chat(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert (unknown.value.status_code, unknown.value.error) == (404, "model 'nope' not found, try pulling it first")
    fake.script(status(503))
    with pytest.raises(ollama.ResponseError) as busy:
        client.chat(model="llama3.2:latest", messages=[{"role": "user", "content": "hi"}])
    assert busy.value.status_code == 503


def test_cloud_mode_wants_the_bearer_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    with FakeOllama(api_key="sk-cloud") as fake:
        anonymous = ollama.Client(host=fake.url)
        keyed = ollama.Client(host=fake.url, headers={"Authorization": "Bearer sk-cloud"})
        with pytest.raises(ollama.ResponseError) as refused:
            anonymous.list()
        assert refused.value.status_code == 401
        assert keyed.list().models
        anonymous._client.close()
        keyed._client.close()
