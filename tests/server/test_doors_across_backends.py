"""The remaining door x backend pairs: Ollama clients on an Anthropic backend, OpenAI embeddings on Ollama."""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import openai
import pytest

from support import Gateway
from upstreams import fake_embedding
from upstreams.anthropic_server import API_KEY, FakeAnthropic
from upstreams.ollama_server import FakeModel, FakeOllama

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with FakeAnthropic() as claude, FakeOllama(models=[FakeModel("nomic-embed-text")]) as local:
        config = {
            "providers": {
                "claude": {
                    "type": "anthropic",
                    "base_url": claude.url,
                    "api_key": API_KEY,
                    "models": ["claude-sonnet-4-5"],
                },
                "local": {"type": "ollama", "base_url": local.url, "models": ["nomic-embed-text"]},
            },
            "routing": {"exact_matches": {"claude-main": {"provider": "claude", "model": "claude-sonnet-4-5"}}},
        }
        with Gateway(config) as gw:
            yield gw


def test_ollama_client_on_an_anthropic_backend(gateway: Gateway) -> None:
    client = ollama.Client(host=gateway.root_url)
    try:
        reply = client.chat(model="claude-main", messages=USER)
        assert "hello there" in (reply.message.content or "") and reply.done
        parts = list(client.chat(model="claude-main", messages=USER, stream=True))
        assert "hello there" in "".join(p.message.content or "" for p in parts) and parts[-1].done
        generated = client.generate(model="claude-main", prompt="hello there")
        assert "hello there" in generated.response
        assert "claude-main" in {m.model for m in client.list().models}
        with pytest.raises(ollama.ResponseError) as refused:
            client.embed(model="claude-main", input="x")  # Anthropic has no embeddings API
        assert refused.value.status_code == 400
    finally:
        client._client.close()


def test_openai_embeddings_on_an_ollama_backend(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=gateway.url, api_key="x", max_retries=0) as sdk:
        done = sdk.embeddings.create(model="nomic-embed-text", input=["a", "b"])
    assert [d.embedding for d in done.data] == [pytest.approx(fake_embedding(t, 8), rel=1e-6) for t in "ab"]
    assert done.model == "nomic-embed-text"
