"""Embeddings on an Ollama backend (/api/embed) and batching for backends with an input limit."""

from __future__ import annotations

import pytest

import llmmux
from upstreams import FakeOpenAI, fake_embedding
from upstreams.ollama_server import FakeModel, FakeOllama


async def test_ollama_embed_through_the_router() -> None:
    with FakeOllama(models=[FakeModel("nomic-embed-text")]) as up:
        config = {
            "providers": {
                "local": {
                    "type": "ollama",
                    "base_url": up.url,
                    "models": ["nomic-embed-text"],
                    "embedding_batch_size": 2,
                }
            }
        }
        async with llmmux.Router.from_config(config) as router:
            done = await router.embed(model="nomic-embed-text", input=["a", "b", "c"], dimensions=4)
        batches = [r.json["input"] for r in up.requests_to("/api/embed")]
    assert sorted(batches) == [["a", "b"], ["c"]]
    assert done.response.vectors == [pytest.approx(fake_embedding(t, 4), rel=1e-6) for t in "abc"]
    assert done.response.usage is not None and done.response.usage.prompt_tokens == 3


async def test_openai_format_batches_keep_input_order() -> None:
    with FakeOpenAI() as up:
        config = {
            "providers": {
                "p": {"type": "openai_compatible", "base_url": up.url, "models": ["e"], "embedding_batch_size": 3}
            }
        }
        async with llmmux.Router.from_config(config) as router:
            texts = [f"t{i}" for i in range(7)]
            done = await router.embed(model="e", input=texts, encoding_format="float")
    assert len(up.requests_to("/v1/embeddings")) == 3
    assert done.response.vectors == [pytest.approx(fake_embedding(t, 8), rel=1e-6) for t in texts]


async def test_token_arrays_are_refused_by_ollama() -> None:
    with FakeOllama(models=[FakeModel("nomic-embed-text")]) as up:
        config = {"providers": {"local": {"type": "ollama", "base_url": up.url, "models": ["nomic-embed-text"]}}}
        async with llmmux.Router.from_config(config) as router:
            with pytest.raises(llmmux.InvalidRequest, match="token arrays"):
                await router.embed(model="nomic-embed-text", input=[[1, 2]])
