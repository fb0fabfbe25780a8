"""The semantic cache, offline: prompts embedded by the tiny in-process GGUF embedding model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cache.test_exact_e2e import MASTER, post, settle
from local.fixtures import embedding_gguf  # noqa: F401  (fixture)
from support import Gateway
from support.redis_server import RedisServer
from upstreams import FakeOpenAI

pytest.importorskip("xllamacpp")
THRESHOLD = 0.93  # the tiny model's random weights score this paraphrase ~0.99, the unrelated prompt ~0.81


def config(up: FakeOpenAI, model: Path, ledger: Path, store: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(ledger), "flush_interval": 0.05},
        "providers": {
            "main": {"type": "openai_compatible", "base_url": up.url, "models": ["m1"]},
            "local": {"type": "llama_cpp", "n_threads": 1, "models": [{"name": "embed", "path": str(model)}]},
        },
        "routing": {"exact_matches": {"chat": {"provider": "main", "model": "m1"}}},
        "routing_strategy": {
            "routes": {"chat": {"cache": {"mode": "semantic", "threshold": THRESHOLD, "embedding": "embed"}}}
        },
        **({"cache": store} if store else {}),
    }


def ask(text: str, system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    return {"model": "chat", "messages": [*messages, {"role": "user", "content": text}]}


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_paraphrases_hit_and_the_rest_miss(up: FakeOpenAI, embedding_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    with Gateway(config(up, embedding_gguf, tmp_path / "l.db")) as gw:
        assert post(gw, ask("What is the capital of France?")).headers["x-llmmux-cache"] == "miss"
        settle(gw)
        same = post(gw, ask("What is the capital of France?"))
        paraphrase = post(gw, ask("What's the capital city of France?"))
        unrelated = post(gw, ask("How do I bake sourdough bread at home?"))
        other_system = post(gw, ask("What is the capital of France?", system="Answer in French."))
    assert same.headers["x-llmmux-cache"] == "hit"  # the exact key is tried before any embedding
    label = paraphrase.headers["x-llmmux-cache"]
    assert label.startswith("semantic-hit; score=0.9"), label
    assert float(label.split("score=")[1]) >= THRESHOLD
    assert paraphrase.json()["choices"][0]["message"]["content"] == "echo: What is the capital of France?"
    assert unrelated.headers["x-llmmux-cache"] == "miss"
    assert other_system.headers["x-llmmux-cache"] == "miss"  # the guard: system prompt must match exactly
    assert len(up.requests) == 3


def test_semantic_entries_are_shared_through_redis(up: FakeOpenAI, embedding_gguf: Path, tmp_path: Path) -> None:  # noqa: F811
    with RedisServer(tmp_path) as redis:
        cfg = config(up, embedding_gguf, tmp_path / "l.db", {"store": "redis", "url": redis.url})
        with Gateway(cfg) as one, Gateway(cfg) as two:
            post(two, ask("nothing yet"))  # `two` has looked (and indexed) before `one` writes
            post(one, ask("What is the capital of France?"))
            settle(one)
            deadline = time.monotonic() + 10  # `two` picks up entries others wrote every couple of seconds

            def look() -> str:  # no-store: a miss here must not fill an exact entry of its own
                paraphrase = ask("What's the capital city of France?")
                return post(two, paraphrase, **{"cache-control": "no-store"}).headers["x-llmmux-cache"]

            label = look()
            while not label.startswith("semantic-hit") and time.monotonic() < deadline:
                time.sleep(0.3)
                label = look()
            assert label.startswith("semantic-hit")
            stats = httpx.get(two.root_url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"}).json()
            assert stats["semantic_hits"] >= 1 and stats["semantic_index"] >= 1
