"""Which non-streaming answers a client's leaving cancels: only those every candidate of whose
route is a local model (a cloud upstream bills the request whether or not anyone reads it)."""

from __future__ import annotations

import asyncio
from typing import Any

from llmmux.events import CallContext
from llmmux.router import Router
from llmmux.server.http import CancelOnDisconnect
from llmmux.server.streaming import runs_locally
from llmmux.types import ChatRequest


def gone_after(seconds: float) -> Any:
    async def receive() -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"type": "http.disconnect"}

    return receive


async def answer_while_watched(cancel: bool) -> tuple[str, bool]:
    watch = CancelOnDisconnect(gone_after(0.01), after=0.001, cancel_if=lambda: cancel)
    watch.start()
    try:
        await asyncio.sleep(0.2)
        outcome = "answered"
    except asyncio.CancelledError:
        outcome = "cancelled" if watch.stop(cancelled=True) else "cancelled elsewhere"
    finally:
        watch.stop()
    return outcome, watch.disconnected


async def test_a_disconnect_cancels_only_where_the_policy_says_so() -> None:
    assert await answer_while_watched(cancel=True) == ("cancelled", True)
    assert await answer_while_watched(cancel=False) == ("answered", False)


def test_only_a_route_of_local_models_is_cancelled_when_its_client_leaves() -> None:
    router = Router.from_config(
        {
            "providers": {
                "cloud": {"type": "openai", "api_key": "sk-test", "models": ["gpt-4o"]},
                "lan": {"type": "openai_compatible", "base_url": "http://192.168.1.20:8000/v1", "models": ["qwen"]},
                "box": {"type": "ollama", "base_url": "http://127.0.0.1:11434", "models": ["llama3"]},
            },
            "routing": {
                "exact_matches": {
                    "mixed": {"provider": "lan", "model": "qwen", "fallback": ["cloud"]},
                    "home": {"provider": "lan", "model": "qwen", "fallback": ["box"]},
                }
            },
            "tag_routes": [{"tag": "urgent", "to": "gpt-4o", "models": ["qwen"]}],
        }
    )

    def local(model: str, tags: tuple[str, ...] = ()) -> bool:
        chat = ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}])
        return runs_locally(router, chat, CallContext(tags=tags))

    assert local("qwen") and local("llama3") and local("home")
    assert not local("gpt-4o") and not local("mixed")  # a cloud candidate may be the one answering
    assert not local("no-such-model")
    # The route the pipeline takes, not the name's: a tag may send a local model's name to the cloud.
    assert local("qwen", ("other",)) and not local("qwen", ("urgent",))
