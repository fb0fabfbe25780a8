"""A local model's sampling defaults reach llama.cpp, under what the client sets: on the tiny
GGUF, whose greedy reply repeats a word that a repeat penalty forbids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmmux.router import Router
from local.fixtures import tiny_gguf  # noqa: F401  (fixture)

HELLO = [{"role": "user", "content": "hello"}]
GREEDY: Any = {"temperature": 0, "max_tokens": 6}
PLAIN = " moon slow fish fish fish fish"  # the tiny model's greedy reply with no penalty


def local_router(tiny: Path, sampling: dict[str, Any]) -> Router:
    model = {"path": str(tiny), "sampling": sampling}
    models = [{"name": "tiny", **model}, {"name": "tiny-plain", "path": str(tiny)}]
    return Router.from_config({"providers": {"local": {"type": "llama_cpp", "n_threads": 1, "models": models}}})


async def reply(router: Router, model: str, **extra: Any) -> str:
    done = await router.chat(model=model, messages=HELLO, **GREEDY, **extra)
    return done.response.choices[0].message.content or ""


async def test_the_models_repeat_penalty_applies_unless_the_request_sets_its_own(tiny_gguf: Path) -> None:  # noqa: F811
    async with local_router(tiny_gguf, {"repeat_penalty": 1.8, "repeat_last_n": 64}) as router:
        assert await reply(router, "tiny-plain") == PLAIN
        penalized = await reply(router, "tiny")
        assert penalized != PLAIN and penalized.count(" fish") < 2, penalized
        assert await reply(router, "tiny", repeat_penalty=1.0) == PLAIN  # the client's value wins
        streamed = [c async for c in router.stream(model="tiny", messages=HELLO, **GREEDY)]
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == penalized
