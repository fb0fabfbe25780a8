"""One call for scripts: `llmmux.completion(...)` builds a router, asks, and closes it.

    import llmmux
    done = llmmux.completion(model="smollm2-135m", messages=[{"role": "user", "content": "hi"}])
    print(done.choices[0].message.content, done.provider, done.cost)

The config is `config=` (a folder, an llmmux.yaml or a dict), else `$LLMMUX_CONFIG`,
./llmmux.yaml or ./config, else what this machine has without probing the network: the
embedded model, GGUF files in $LLMMUX_MODELS_DIR, and cloud providers whose key is set.
Inside a running event loop (a notebook), `await llmmux.acompletion(...)`. A program that
makes many calls keeps one `Router` instead: each call here builds and closes one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config.paths import find_config
from .router import Router
from .routing import Completion

ConfigSource = str | Path | Mapping[str, Any] | None


def completion(model: str, messages: list[dict[str, Any]], *, config: ConfigSource = None, **params: Any) -> Completion:
    """A chat completion, blocking; `params` are OpenAI's (temperature, max_tokens, tools, ...)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(acompletion(model, messages, config=config, **params))
    raise RuntimeError("llmmux.completion() blocks; inside an event loop use `await llmmux.acompletion(...)`")


async def acompletion(
    model: str, messages: list[dict[str, Any]], *, config: ConfigSource = None, **params: Any
) -> Completion:
    """The same, awaited."""
    async with await _router(config) as router:
        return await router.chat(model=model, messages=messages, **params)


async def _router(config: ConfigSource) -> Router:
    source = config if config is not None else find_config()
    if source is not None:
        return Router.from_config(source)
    from .local.defaults import discover_config  # the embedded default: only when there is no config

    discovered, _ = await discover_config(probe=False)
    return Router(discovered)
