"""Both in-process engines on the generated model: same greedy words, templates, errors.

xllamacpp is a required test dependency of the local extra; llama-cpp-python builds from
source and is optional, so its tests run where it is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmmux.errors import AllAttemptsFailed, UpstreamClientError
from llmmux.local.engines import EngineUnavailable, select_engine
from llmmux.router import Router

HAS_LLAMA_CPP_PYTHON = importlib.util.find_spec("llama_cpp") is not None
ENGINES = [
    "xllamacpp",
    pytest.param(
        "llama_cpp_python",
        marks=pytest.mark.skipif(not HAS_LLAMA_CPP_PYTHON, reason="llama-cpp-python is optional and not installed"),
    ),
]
HELLO = [{"role": "user", "content": "hello"}]
PLAIN_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def router_for(engine: str, path: Path, **model: Any) -> Router:
    return Router.from_config(
        {
            "providers": {
                "local": {
                    "type": "llama_cpp",
                    "engine": engine,
                    "n_threads": 1,
                    "models": [{"name": "tiny", "path": str(path), **model}],
                }
            }
        }
    )


@pytest.mark.parametrize("engine", ENGINES)
async def test_both_engines_decode_the_same_greedy_words(engine: str, tiny_gguf: Path) -> None:
    async with router_for(engine, tiny_gguf) as router:
        done = await router.chat(model="tiny", messages=HELLO, temperature=0, max_tokens=6)
        chunks = [c async for c in router.stream(model="tiny", messages=HELLO, temperature=0, max_tokens=6)]
    assert done.response.choices[0].message.content == " moon slow fish fish fish fish"
    usage = done.response.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (30, 6)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " moon slow fish fish fish fish"
    usage = chunks[-1].usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (30, 6)


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_chat_template_from_config_replaces_the_files(engine: str, tiny_gguf: Path) -> None:
    async with router_for(engine, tiny_gguf, chat_template=PLAIN_TEMPLATE) as router:
        done = await router.chat(model="tiny", messages=HELLO, temperature=0, max_tokens=2)
    usage = done.response.usage
    assert usage is not None and usage.prompt_tokens < 10  # just "hello"; with the ChatML template it is 30


@pytest.mark.parametrize("engine", ENGINES)
async def test_grammars_constrain_the_output(engine: str, tiny_gguf: Path) -> None:
    async with router_for(engine, tiny_gguf) as router:
        done = await router.chat(
            model="tiny", messages=HELLO, temperature=0, max_tokens=8, grammar='root ::= "yes" | "no"'
        )
    assert done.response.choices[0].message.content in ("yes", "no")


async def test_llama_cpp_python_runs_one_request_at_a_time_with_a_bounded_queue(tiny_gguf: Path) -> None:
    pytest.importorskip("llama_cpp")
    config = {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "engine": "llama_cpp_python",
                "n_threads": 1,
                "max_queue": 1,
                "models": [{"name": "tiny", "path": str(tiny_gguf)}],
            }
        }
    }
    async with Router.from_config(config) as router:
        results = await asyncio.gather(
            *(router.chat(model="tiny", messages=HELLO, temperature=0, max_tokens=200) for _ in range(4)),
            return_exceptions=True,
        )
        status = router.providers["local"].runtime_status()[0]  # type: ignore[attr-defined]
    refused = [r for r in results if isinstance(r, AllAttemptsFailed)]
    assert len(refused) == 2 and all(r.status == 503 and r.headers()["retry-after"] for r in refused)
    assert status["slots"] == 1 and status["engine"] == "llama_cpp_python"


async def test_requests_the_model_cannot_take_fail_clearly_and_it_keeps_serving(tiny_gguf: Path) -> None:
    async with router_for("xllamacpp", tiny_gguf, n_ctx=64) as router:
        picture = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        image = [{"role": "user", "content": [{"type": "text", "text": "what is this"}, picture]}]
        # llama.cpp raises this as a server error, which lets a route fall back to a vision model.
        with pytest.raises(AllAttemptsFailed, match="image input is not supported"):
            await router.chat(model="tiny", messages=image, max_tokens=2)
        with pytest.raises(UpstreamClientError) as caught:
            await router.chat(model="tiny", messages=[{"role": "user", "content": "hello " * 100}], max_tokens=2)
        assert caught.value.status == 400 and b"exceeds the available context size" in (caught.value.body or b"")
        assert (await router.chat(model="tiny", messages=HELLO, max_tokens=2)).response.choices


def test_an_unknown_engine_is_named() -> None:
    with pytest.raises(EngineUnavailable, match="unknown engine 'vulkan'"):
        select_engine("vulkan")


@pytest.mark.parametrize("engine", ENGINES)
async def test_both_engines_embed_alike(engine: str, embedding_gguf: Path, tiny_gguf: Path) -> None:
    async with router_for("xllamacpp", embedding_gguf) as router:
        reference = (await router.embed(model="tiny", input=["the cat", "blue sky"])).response
    async with router_for(engine, embedding_gguf) as router:
        done = (await router.embed(model="tiny", input=["the cat", "blue sky"])).response
        with pytest.raises(AllAttemptsFailed, match="is an embedding model"):
            await router.chat(model="tiny", messages=HELLO, max_tokens=2)
    async with router_for(engine, tiny_gguf, embedding=True, pooling="last") as router:
        last = (await router.embed(model="tiny", input=["the cat"])).response
    assert [len(v) for v in done.vectors] == [64, 64] and last.vectors[0] != done.vectors[0]
    for got, expected in zip(done.vectors, reference.vectors, strict=True):
        assert got == pytest.approx(expected, abs=1e-3)  # two builds of llama.cpp, the same maths
    assert done.usage is not None and reference.usage is not None
    assert done.usage.prompt_tokens == reference.usage.prompt_tokens


CYCLES = """
import sys
import llmmux.local.engines.xllamacpp as xllamacpp
from llmmux.local.engines.base import ModelSpec
from llmmux.local.gguf import read_info

xllamacpp._template_supports_tools = lambda server, key: None  # its HTTP round trip would hide the race
engine, info = xllamacpp.XLlamaCppEngine(), read_info(sys.argv[1])
for _ in range(25):
    engine.load(ModelSpec(name="tiny", path=sys.argv[1], n_threads=1), info).close()
print("ok")
"""


def test_a_model_unloaded_right_after_loading_does_not_hang(tiny_gguf: Path) -> None:
    # In a child process: a hung close would otherwise hang this one at exit too.
    done = subprocess.run(
        [sys.executable, "-c", CYCLES, str(tiny_gguf)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
