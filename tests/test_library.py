"""The library: public surface, Router and SyncRouter parity, providers directly, runtime registry."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

import llmmux
from support import Gateway
from upstreams import FakeOpenAI, status

USER = [{"role": "user", "content": "hello world"}]


def test_the_public_surface_is_exactly_all() -> None:
    public = {name for name in dir(llmmux) if not name.startswith("_")}
    modules = {
        "cli",
        "console",
        "config",
        "errors",
        "events",
        "health",
        "limits",
        "local",
        "params",
        "providers",
        "reload",
        "loading",
        "router",
        "routing",
        "server",
        "shared",
        "state",
        "sync",
        "types",
        "wire",
        "accounting",
        "admission",
        "estimate",
        "forwarding",
        "keys",
        "ledger",
        "logs",
        "log_queue",
        "masking",
        "metrics",
        "periods",
        "pricing",
        "tracing",
        "oneshot",
        "pools",
        "bounds",
        "param_values",
        "cache",
        "alerts",
        "audit",
        "enduser",
        "tags",
        "teams",
        "key_service",
        "sinks",
        "tasks",
    }
    assert public - modules == set(llmmux.__all__) - {"__version__"}
    for name in llmmux.__all__:
        assert getattr(llmmux, name) is not None


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as up:
        yield up


@pytest.fixture
def backup() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(echo_prefix="backup: ") as up:
        yield up


def config(upstream: FakeOpenAI, backup: FakeOpenAI) -> dict[str, object]:
    return {
        "providers": {
            "main": {"type": "openai_compatible", "base_url": upstream.url, "models": ["m1"]},
            "spare": {"type": "openai_compatible", "base_url": backup.url},
        },
        "routing": {"exact_matches": {"chat": {"provider": "main", "model": "m1", "fallback": "spare"}}},
    }


async def test_router_chat_stream_and_embed(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    async with llmmux.Router.from_config(config(upstream, backup)) as router:
        done = await router.chat(model="chat", messages=USER)
        assert isinstance(done.response, llmmux.ChatResponse)
        assert done.response.choices[0].message.content == "echo: hello world"
        assert (done.provider, done.model, done.attempt_count) == ("main", "m1", 1)
        assert done.response.usage is not None and done.response.usage.completion_tokens == 3
        chunks = [c async for c in router.stream(model="chat", messages=USER)]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello world"
        assert chunks[-1].usage is not None  # usage always arrives for accounting
        vectors = await router.embed(model="chat", input=["a", "b"])
        assert len(vectors.response.vectors) == 2


async def test_typed_errors_and_attempts(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.script(status(500))
    backup.script(status(503))
    async with llmmux.Router.from_config(config(upstream, backup)) as router:
        with pytest.raises(llmmux.AllAttemptsFailed) as caught:
            await router.chat(model="chat", messages=USER)
        assert [(a.provider, a.error.upstream_status) for a in caught.value.attempts] == [("main", 500), ("spare", 503)]
        with pytest.raises(llmmux.ModelNotFound) as missing:
            await router.chat(model="chatt", messages=USER)
        assert missing.value.suggestions == ["chat"]


def test_sync_router_matches_the_async_router(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    with llmmux.SyncRouter.from_config(config(upstream, backup)) as router:
        done = router.chat(model="chat", messages=USER)
        chunks = list(router.stream(model="chat", messages=USER))
        vectors = router.embed(model="chat", input="x")
    assert done.response.choices[0].message.content == "echo: hello world"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello world"
    assert len(vectors.response.vectors) == 1


async def test_library_and_server_route_and_count_alike(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    upstream.script(status(503), status(503))
    async with llmmux.Router.from_config(config(upstream, backup)) as router:
        library = await router.chat(model="chat", messages=USER)
    with Gateway(config(upstream, backup)) as gw:
        response = httpx.post(gw.url + "/chat/completions", json={"model": "chat", "messages": USER})
    body = response.json()
    assert (library.provider, library.model, str(library.attempt_count)) == (
        response.headers["x-llmmux-provider"],
        response.headers["x-llmmux-model"],
        response.headers["x-llmmux-attempts"],
    )
    usage = library.response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        body["usage"]["prompt_tokens"],
        body["usage"]["completion_tokens"],
    )


async def test_one_provider_directly(upstream: FakeOpenAI) -> None:
    provider = llmmux.create_provider("openai_compatible", name="solo", base_url=upstream.url)
    try:
        assert provider.validate_config() == []
        assert provider.info()["name"] == "solo" and provider.info()["api_key"] == "unset"
        assert (await provider.health()).ok
        reply = await provider.chat("any", USER)
        assert reply.choices[0].message.content == "echo: hello world"
        assert provider.cost("any", 1000, 1000) == 0.0
    finally:
        await provider.aclose()
    with pytest.raises(llmmux.ConfigError, match="not supported"):
        llmmux.create_provider("telepathy")


async def test_providers_added_and_removed_at_run_time(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    async with llmmux.Router.from_config(config(upstream, backup)) as router:
        router.add_provider("extra", "openai_compatible", base_url=backup.url, models=["new-model"])
        assert "new-model" in router.models()
        assert (await router.chat(model="new-model", messages=USER)).provider == "extra"
        router.remove_provider("extra")
        with pytest.raises(llmmux.ModelNotFound):
            await router.chat(model="new-model", messages=USER)
        assert set((await router.status()).keys()) == {"main", "spare"}


async def test_responses_carry_cost_from_the_price_table_or_pricing(upstream: FakeOpenAI, backup: FakeOpenAI) -> None:
    config = {
        "providers": {
            "main": {
                "type": "openai_compatible",
                "base_url": upstream.url,
                "models": [{"name": "m1", "pricing": {"input": 2.0, "output": 8.0}}],
            }
        }
    }
    async with llmmux.Router.from_config(config) as router:
        done = await router.chat(model="m1", messages=USER)
        usage = done.response.usage
        assert usage is not None
        expected = (usage.prompt_tokens * 2.0 + usage.completion_tokens * 8.0) / 1_000_000
        assert done.cost == pytest.approx(expected)
        assert router.providers["main"].cost("m1", 1_000_000, 1_000_000) == pytest.approx(10.0)
    provider = llmmux.create_provider("openai", api_key="sk-test-0123456789abcdef")
    assert provider.cost("gpt-4o-mini", 1_000_000, 0) > 0  # from the built-in, dated price table
    await provider.aclose()


async def test_the_answer_reads_like_the_sdks_with_llmmux_facts_beside_it(upstream: FakeOpenAI) -> None:
    priced = {
        "type": "openai_compatible",
        "base_url": upstream.url,
        "models": [{"name": "m1", "pricing": {"input": 2, "output": 8}}],
    }
    async with llmmux.Router.from_config({"providers": {"main": priced}}) as router:
        done = await router.chat(model="m1", messages=USER)
        assert done.choices[0].message.content == "echo: hello world"
        assert done.usage is not None and done.usage.completion_tokens == 3
        assert done.id == done.response.id and done.content == "echo: hello world"
        body = done.model_dump()
        assert body == done.to_dict()
        assert body["object"] == "chat.completion" and body["model"] == "m1"
        assert body["choices"][0]["message"]["content"] == "echo: hello world"
        assert body["llmmux"] == {
            "provider": "main",
            "model": "m1",
            "attempts": [],
            "cost_usd": done.cost,
            "dropped_params": [],
        }
        vectors = await router.embed(model="m1", input=["a", "b"])
        assert len(vectors.data) == 2 and vectors.to_dict()["object"] == "list"


async def test_a_stream_knows_its_cost_once_it_has_ended(upstream: FakeOpenAI) -> None:
    priced = {
        "type": "openai_compatible",
        "base_url": upstream.url,
        "models": [{"name": "m1", "pricing": {"input": 2, "output": 8}}],
    }
    async with llmmux.Router.from_config({"providers": {"main": priced}}) as router:
        stream = await router.open_stream(model="m1", messages=USER)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "echo: hello world"
        usage = stream.record.usage
        assert usage is not None
        assert stream.cost == pytest.approx((usage.prompt_tokens * 2 + usage.completion_tokens * 8) / 1_000_000)
        assert stream.cost > 0


SCRIPT = """
import asyncio, gc, sys
import llmmux

async def main(url):
    router = llmmux.Router.from_config({"providers": {"p": {"type": "openai_compatible", "base_url": url, "models": ["m"]}}})
    done = await router.chat(model="m", messages=[{"role": "user", "content": "hi"}])
    stream = await router.open_stream(model="m", messages=[{"role": "user", "content": "hi"}])
    async for _ in stream:
        pass
    print(done.choices[0].message.content)

asyncio.run(main(sys.argv[1]))
gc.collect()
print(llmmux.completion(model="m", messages=[{"role": "user", "content": "one call"}], config={"providers": {"p": {"type": "openai_compatible", "base_url": sys.argv[1], "models": ["m"]}}}).content)
"""


def test_a_router_never_closed_leaves_no_warnings(upstream: FakeOpenAI) -> None:
    # A script that never uses `async with` nor calls aclose(): its pools are closed when the loop ends.
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", SCRIPT, upstream.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["echo:", "hi", "echo:", "one", "call"]
    assert "Unclosed" not in result.stderr and "unclosed" not in result.stderr, result.stderr


def test_one_call_refuses_to_block_inside_a_loop(upstream: FakeOpenAI) -> None:
    async def inside() -> None:
        llmmux.completion(model="m", messages=USER, config={"providers": {}})

    with pytest.raises(RuntimeError, match="acompletion"):
        asyncio.run(inside())
