"""Embeddings from in-process GGUF models: the official `openai` and `ollama` SDKs against the
served app, on the tiny model's embedding variant (mean pooling named in the file) and on
the chat model loaded with `embedding: true`."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest

from llmmux.config.loader import config_from_dict
from llmmux.config.model import Config
from llmmux.errors import AllAttemptsFailed
from llmmux.loading import check
from llmmux.router import Router
from llmmux.server.app import App
from local.fixtures import embedding_gguf, tiny_gguf  # noqa: F401  (fixtures)
from local.serving import serving
from local.tiny_gguf import EMBEDDING_LENGTH


def config(embedding: Path, chat: Path, **provider: Any) -> dict[str, Any]:
    return {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "n_threads": 1,
                **provider,
                "models": [
                    {"name": "embed", "path": str(embedding)},
                    {"name": "chat", "path": str(chat)},
                    {"name": "chat-as-embed", "path": str(chat), "embedding": True},
                    {"name": "chat-as-embed-cls", "path": str(chat), "embedding": True, "pooling": "cls"},
                    {"name": "short", "path": str(embedding), "n_ctx": 64},
                ],
            }
        }
    }


@pytest.fixture(scope="module")
def base(embedding_gguf: Path, tiny_gguf: Path) -> Iterator[str]:  # noqa: F811
    with serving(App(Router.from_config(config(embedding_gguf, tiny_gguf)))) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def floats(client: openai.OpenAI, texts: list[str], model: str = "embed", **kwargs: Any) -> list[list[float]]:
    reply = client.embeddings.create(model=model, input=texts, encoding_format="float", **kwargs)
    return [item.embedding for item in reply.data]


def test_the_sdk_gets_one_unit_vector_per_input_counted_by_the_models_tokenizer(client: openai.OpenAI) -> None:
    started = time.perf_counter()
    reply = client.embeddings.create(model="embed", input=["the cat", "a river of stone"], encoding_format="float")
    elapsed = time.perf_counter() - started
    assert reply.model == "embed" and [item.index for item in reply.data] == [0, 1]
    vectors = [item.embedding for item in reply.data]
    assert [len(v) for v in vectors] == [EMBEDDING_LENGTH] * 2
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)  # normalised, as OpenAI's are
    assert vectors[0] != vectors[1]
    assert floats(client, ["the cat", "a river of stone"]) == vectors  # deterministic
    # Each input is pooled on its own: batched with others, it differs only by float rounding.
    assert floats(client, ["a river of stone"])[0] == pytest.approx(vectors[1], abs=1e-6)
    assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens == reply.usage.prompt_tokens
    assert elapsed < 1.0


def test_base64_the_sdks_default_carries_the_same_values(client: openai.OpenAI) -> None:
    reply = client.embeddings.create(model="embed", input="the cat")  # the SDK asks for base64 and decodes it
    assert reply.data[0].embedding == pytest.approx(floats(client, ["the cat"])[0], rel=1e-6)


def test_dimensions_cut_the_vector_and_scale_it_back_to_unit_length(client: openai.OpenAI) -> None:
    full = floats(client, ["the cat"])[0]
    cut = floats(client, ["the cat"], dimensions=8)[0]
    norm = math.hypot(*full[:8])
    assert cut == pytest.approx([x / norm for x in full[:8]], rel=1e-5)
    with pytest.raises(openai.BadRequestError) as caught:
        floats(client, ["the cat"], dimensions=EMBEDDING_LENGTH + 1)
    assert caught.value.body["param"] == "dimensions"  # type: ignore[index]
    assert f"makes {EMBEDDING_LENGTH}-dimensional embeddings" in caught.value.message


def test_a_chat_model_embeds_only_when_configured_for_it(client: openai.OpenAI) -> None:
    mean = floats(client, ["the cat", "blue sky"], model="chat-as-embed")
    cls = floats(client, ["the cat", "blue sky"], model="chat-as-embed-cls")
    assert len(mean[0]) == EMBEDDING_LENGTH and mean != cls  # its pooling: the default mean, or as configured
    same = floats(client, ["the cat", "blue sky"])  # the same weights pooled the same way as `embed`
    assert mean[0] == pytest.approx(same[0], abs=1e-6) and mean[1] == pytest.approx(same[1], abs=1e-6)
    with pytest.raises(openai.BadRequestError, match="model 'chat' is a chat model; set `embedding: true`"):
        floats(client, ["the cat"], model="chat")


async def test_embedding_models_are_listed_as_such(embedding_gguf: Path, tiny_gguf: Path) -> None:  # noqa: F811
    async with Router.from_config(config(embedding_gguf, tiny_gguf)) as router:
        listed = {m.id: m.specialty for m in await router.providers["local"].list_models()}
    assert listed == {
        "embed": "embedding",
        "chat": None,
        "chat-as-embed": "embedding",
        "chat-as-embed-cls": "embedding",
        "short": "embedding",
    }


def test_an_embedding_model_does_not_chat(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="model 'embed' is an embedding model"):
        client.chat.completions.create(model="embed", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=2
    ).choices


def test_bad_inputs_are_the_clients_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="too large to process") as caught:
        floats(client, ["hello " * 100], model="short")  # longer than its 64-token context
    assert caught.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError, match="invalid tokens"):
        client.embeddings.create(model="embed", input=[[10**6]], encoding_format="float")
    assert len(client.embeddings.create(model="embed", input=[[40, 41, 42]], encoding_format="float").data) == 1


def test_ollamas_embed_endpoint(base: str, client: openai.OpenAI) -> None:
    sdk = ollama.Client(host=base)
    try:
        reply = sdk.embed(model="embed", input=["the cat", "blue sky"])
        single = sdk.embeddings(model="embed", prompt="the cat")
    finally:
        sdk._client.close()
    expected = floats(client, ["the cat", "blue sky"])
    assert [list(v) for v in reply.embeddings] == [pytest.approx(v, abs=1e-6) for v in expected]
    assert reply.model == "embed" and (reply.prompt_eval_count or 0) > 0
    assert list(single.embedding) == pytest.approx(expected[0], abs=1e-6)


async def test_batches_spread_over_the_slots_and_keep_the_input_order(embedding_gguf: Path, tiny_gguf: Path) -> None:  # noqa: F811
    texts = [f"{word} sky" for word in ("red", "blue", "green", "dark", "warm")]
    async with Router.from_config(config(embedding_gguf, tiny_gguf)) as router:
        whole = await router.embed(model="embed", input=texts)
    async with Router.from_config(config(embedding_gguf, tiny_gguf, embedding_batch_size=2)) as router:
        batched = await router.embed(model="embed", input=texts)
        for _ in range(3):
            with pytest.raises(AllAttemptsFailed) as caught:
                await router.embed(model="chat", input=["x"])
        assert router.health.record("local").state == "active"  # the request's fault, not the provider's
    for got, expected in zip(batched.response.vectors, whole.response.vectors, strict=True):
        assert got == pytest.approx(expected, abs=1e-6)
    assert batched.response.usage is not None and whole.response.usage is not None
    assert batched.response.usage.prompt_tokens == whole.response.usage.prompt_tokens
    assert caught.value.status == 400  # NotSupported: a route would try its next candidate


def test_embedding_settings_are_checked() -> None:
    parsed, _ = config_from_dict(
        {
            "providers": {
                "local": {
                    "type": "llama_cpp",
                    "models": [
                        {"name": "a", "path": "/m/a.gguf", "pooling": "none"},
                        {"name": "b", "path": "/m/b.gguf", "embedding": "yes", "pooling": "max"},
                    ],
                }
            }
        }
    )
    problems = dict(entry_problems(parsed, "local"))
    assert "which the embeddings APIs cannot return" in problems["models.a.pooling"]
    assert "expected one of mean, cls, last, rank, got 'max'" in problems["models.b.pooling"]
    assert "expected true or false" in problems["models.b.embedding"]


def entry_problems(config: Config, name: str) -> list[tuple[str, str]]:
    """The errors validation finds in provider `name`'s entry, as (key path below it, message)."""
    prefix = f"providers.{name}."
    errors = check(config).problems.errors
    return [(p.path.removeprefix(prefix), p.message) for p in errors if p.path.startswith(prefix)]
