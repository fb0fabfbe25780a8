"""`type: llama_cpp` through the Router, on real GGUF files and the xllamacpp engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from llmmux.config.loader import config_from_dict
from llmmux.config.model import Config
from llmmux.errors import AllAttemptsFailed, InvalidRequest, UpstreamClientError
from llmmux.loading import check
from llmmux.providers.llama_cpp import LlamaCppProvider
from llmmux.router import Router
from llmmux.routing import first_token
from llmmux.types import ChatRequest, Message
from local.fixtures import models_dir, tiny_gguf  # noqa: F401  (fixtures)

HELLO = [{"role": "user", "content": "hello"}]
GREEDY = {"temperature": 0, "max_tokens": 6}


def local_router(models: list[dict[str, Any]], **settings: Any) -> Router:
    return Router.from_config(
        {"providers": {"local": {"type": "llama_cpp", "n_threads": 1, "models": models, **settings}}}
    )


def provider(router: Router) -> LlamaCppProvider:
    found = router.providers["local"]
    assert isinstance(found, LlamaCppProvider)
    return found


def loaded(router: Router) -> dict[str, str]:
    return {row["model"]: row["state"] for row in provider(router).runtime_status() if row["state"] != "unloaded"}


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Unloading runs on the loader's thread: wait for its outcome instead of guessing a delay."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def router(tiny_gguf: Path) -> Any:  # noqa: F811
    async with local_router([{"name": "tiny", "path": str(tiny_gguf)}]) as r:
        yield r


async def test_a_completion_with_usage_from_the_models_tokenizer(router: Router) -> None:
    done = await router.chat(model="tiny", messages=HELLO, **GREEDY)
    choice = done.response.choices[0]
    assert choice.finish_reason == "length" and choice.message.role == "assistant"
    assert choice.message.content == " moon slow fish fish fish fish"  # greedy decoding is deterministic
    usage = done.response.usage
    assert usage is not None and usage.completion_tokens == 6 and usage.prompt_tokens == 30
    assert (done.provider, done.model) == ("local", "tiny")


async def test_streaming_yields_the_same_text_then_usage(router: Router) -> None:
    whole = (await router.chat(model="tiny", messages=HELLO, **GREEDY)).response.choices[0].message.content
    chunks = [c async for c in router.stream(model="tiny", messages=HELLO, **GREEDY)]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


async def test_stop_sequences_and_grammars_are_honoured(router: Router) -> None:
    stopped = await router.chat(model="tiny", messages=HELLO, stop=[" fish"], **GREEDY)
    assert stopped.response.choices[0].message.content == " moon slow"
    assert stopped.response.choices[0].finish_reason == "stop"
    constrained = await router.chat(
        model="tiny", messages=HELLO, temperature=0, max_tokens=8, grammar='root ::= "yes" | "no"'
    )
    assert constrained.response.choices[0].message.content in ("yes", "no")


async def test_a_prompt_longer_than_the_context_is_the_clients_error(tiny_gguf: Path) -> None:  # noqa: F811
    async with local_router([{"name": "tiny", "path": str(tiny_gguf), "n_ctx": 128}]) as router:
        with pytest.raises(UpstreamClientError) as caught:
            await router.chat(model="tiny", messages=[{"role": "user", "content": "hello " * 40}], **GREEDY)
    assert caught.value.status == 400 and b"exceed_context_size_error" in (caught.value.body or b"")


async def test_max_output_tokens_caps_every_reply(tiny_gguf: Path) -> None:  # noqa: F811
    models = [{"name": "capped", "path": str(tiny_gguf), "max_output_tokens": 4}]
    async with local_router(models, n_ctx=256) as router:
        unasked = await router.chat(model="capped", messages=HELLO, temperature=0)  # would run to the context's end
        more = await router.chat(model="capped", messages=HELLO, temperature=0, max_tokens=50)
        fewer = await router.chat(model="capped", messages=HELLO, temperature=0, max_tokens=2)
        streamed = [c async for c in router.stream(model="capped", messages=HELLO, temperature=0)]
    for done, tokens in ((unasked, 4), (more, 4), (fewer, 2)):
        assert done.response.usage is not None and done.response.usage.completion_tokens == tokens
        assert done.response.choices[0].finish_reason == "length"
    usage = streamed[-1].usage
    assert usage is not None and usage.completion_tokens == 4


async def test_reading_a_long_prompt_reports_progress_and_measures_its_speed(tiny_gguf: Path) -> None:  # noqa: F811
    async with local_router([{"name": "tiny", "path": str(tiny_gguf)}], n_ctx=512, n_batch=32) as router:
        reports: list[int] = []
        with first_token.watching(lambda: reports.append(1)):
            chunks = [
                c
                async for c in provider(router).stream(
                    ChatRequest(model="tiny", messages=[Message(role="user", content="hello " * 40)], max_tokens=2),
                    "tiny",
                )
            ]
        assert len(reports) >= 6  # one per 32-token batch read: each re-arms the first-token wait
        assert chunks[0].choices and chunks[0].choices[0].delta.role == "assistant"
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1  # no progress reaches clients
        assert router.pipeline.speeds.speed("local/tiny") is None
        other = [{"role": "user", "content": "world " * 40}]  # not cached: read afresh, so it measures
        streamed = [c async for c in router.stream(model="tiny", messages=other, max_tokens=2)]
        assert streamed[-1].usage is not None and streamed[-1].usage.prompt_tokens > 200
    speed = router.pipeline.speeds.speed("local/tiny")
    assert speed is not None and speed > 0  # tokens read per second, for the next deadline


async def test_keep_alive_on_the_request_follows_ollama(router: Router) -> None:
    await router.chat(model="tiny", messages=HELLO, keep_alive=-1, **GREEDY)
    assert loaded(router) == {"tiny": "ready"}
    row = provider(router).runtime_status()[0]
    assert row["keep_alive"] is None and row["expires_at"] is None  # pinned
    await router.chat(model="tiny", messages=HELLO, keep_alive=0, **GREEDY)
    assert loaded(router) in ({"tiny": "unloading"}, {})  # at once, not after a timer
    await until(lambda: loaded(router) == {})
    with pytest.raises(InvalidRequest, match="expected a duration"):
        await router.chat(model="tiny", messages=HELLO, keep_alive="soon", **GREEDY)


async def test_the_least_recently_used_model_is_evicted(tiny_gguf: Path) -> None:  # noqa: F811
    models = [{"name": n, "path": str(tiny_gguf)} for n in ("a", "b", "c")]
    async with local_router(models, max_loaded_models=2) as router:
        for name in ("a", "b", "a", "c"):
            await router.chat(model=name, messages=HELLO, **GREEDY)
        await until(lambda: loaded(router) == {"a": "ready", "c": "ready"})


async def test_concurrent_first_requests_share_one_load(tiny_gguf: Path) -> None:  # noqa: F811
    async with local_router([{"name": "tiny", "path": str(tiny_gguf)}]) as router:
        loader = provider(router).loader
        calls: list[str] = []
        real_load = loader.load

        async def counting_load(name: str) -> Any:
            calls.append(name)
            return await real_load(name)

        loader.load = counting_load  # type: ignore[method-assign]
        results = await asyncio.gather(*(router.chat(model="tiny", messages=HELLO, **GREEDY) for _ in range(6)))
    assert calls == ["tiny"]
    assert {r.response.choices[0].message.content for r in results} == {" moon slow fish fish fish fish"}


async def test_broken_models_fail_alone_with_a_clear_error(tmp_path: Path, tiny_gguf: Path) -> None:  # noqa: F811
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf.read_bytes()[:-4096])  # header intact, weights missing
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a model at all" * 100)
    models = [
        {"name": "missing", "path": str(tmp_path / "nope.gguf")},
        {"name": "cut", "path": str(cut)},
        {"name": "garbage", "path": str(garbage)},
        {"name": "tiny", "path": str(tiny_gguf)},
    ]
    async with local_router(models) as router:
        for name, reason in (
            ("missing", "does not exist"),
            ("garbage", "not a GGUF file"),
            ("cut", "llama.cpp could not load"),
        ):
            with pytest.raises(AllAttemptsFailed) as caught:
                await router.chat(model=name, messages=HELLO, **GREEDY)
            assert f"model '{name}' could not be loaded" in caught.value.message and reason in caught.value.message
        for name in ("missing", "garbage", "cut"):  # more failures than any cooldown threshold
            with pytest.raises(AllAttemptsFailed):
                await router.chat(model=name, messages=HELLO, **GREEDY)
        # Broken files are those models' failures, not the provider's: no cooldown for the rest.
        assert router.health.record("local").state == "active"
        assert (await router.chat(model="tiny", messages=HELLO, **GREEDY)).response.choices
        rows = {row["model"]: row for row in provider(router).runtime_status()}
        assert "does not exist" in rows["missing"]["last_error"] and rows["tiny"]["state"] == "ready"


async def test_a_client_leaving_mid_stream_frees_the_slot(tiny_gguf: Path) -> None:  # noqa: F811
    # 8192 tokens of context would take the tiny model seconds to fill: the slot must come
    # free at the next token instead.
    async with local_router([{"name": "tiny", "path": str(tiny_gguf), "parallel": 1, "n_ctx": 8192}]) as router:
        stream = await router.open_stream(model="tiny", messages=HELLO, temperature=0, max_tokens=100_000)
        seen = [await stream.__anext__() for _ in range(3)]
        await stream.aclose()
        assert len(seen) == 3
        await until(lambda: provider(router).runtime_status()[0]["slots_busy"] == 0, timeout=2.0)
        assert provider(router).runtime_status()[0]["in_flight"] == 0
        assert (await router.chat(model="tiny", messages=HELLO, **GREEDY)).response.choices


async def test_requests_past_the_slots_and_their_queue_get_503(tiny_gguf: Path) -> None:  # noqa: F811
    models = [{"name": "tiny", "path": str(tiny_gguf), "parallel": 1, "n_ctx": 2048}]
    async with local_router(models, max_queue=1) as router:
        long = {"temperature": 0, "max_tokens": 300}
        results = await asyncio.gather(
            *(router.chat(model="tiny", messages=HELLO, **long) for _ in range(3)), return_exceptions=True
        )
    refused = [r for r in results if isinstance(r, AllAttemptsFailed)]
    assert len(refused) == 1 and refused[0].status == 503 and refused[0].headers()["retry-after"]
    assert "busy" in refused[0].message


async def test_models_dir_discovery_and_preload(models_dir: Path) -> None:  # noqa: F811
    async with Router.from_config(
        {
            "providers": {
                "local": {"type": "llama_cpp", "models_dir": str(models_dir), "preload": ["beta"], "n_threads": 1}
            }
        }
    ) as router:
        assert {"alpha", "beta", "gamma"} <= set(router.models())
        await router.start()
        await until(lambda: loaded(router) == {"beta": "ready"})  # and nothing else
        listed = {m.id: m for m in await provider(router).list_models()}
        assert listed["alpha"].context_length == 2048 and listed["alpha"].size


def test_check_config_names_every_bad_setting() -> None:
    config, _ = config_from_dict(
        {
            "providers": {
                "local": {
                    "type": "llama_cpp",
                    "keep_alive": "soon",
                    "max_loaded_models": 0,
                    "engine": "vulkan",
                    "preload": ["x"],
                    "cache_type": "q3",
                    "models": [
                        {"name": "a"},
                        {"name": "b", "path": "/m/b.gguf", "n_ctx": -4, "colour": 1, "max_output_tokens": 0},
                    ],
                }
            }
        }
    )
    problems = dict(entry_problems(config, "local"))
    assert "expected a duration" in problems["keep_alive"]
    assert "expected a positive integer, got" in problems["max_loaded_models"]
    assert "expected one of auto, xllamacpp, llama_cpp_python" in problems["engine"]
    assert "not one of this provider's models" in problems["preload"]
    assert "expected a 'path'" in problems["models.a"] and "unknown model option(s) colour" in problems["models.b"]
    assert (
        "expected a positive integer, got" in problems["models.b.n_ctx"]
        and "expected one of" in problems["cache_type_k"]
    )
    assert "expected a positive integer, got" in problems["models.b.max_output_tokens"]
    empty, _ = config_from_dict({"providers": {"local": {"type": "llama_cpp"}}})
    assert entry_problems(empty, "local") == [
        ("models", "no models: list them with a path, or set models_dir to a folder of .gguf files")
    ]


def entry_problems(config: Config, name: str) -> list[tuple[str, str]]:
    """The errors validation finds in provider `name`'s entry, as (key path below it, message)."""
    prefix = f"providers.{name}."
    errors = check(config).problems.errors
    return [(p.path.removeprefix(prefix), p.message) for p in errors if p.path.startswith(prefix)]
