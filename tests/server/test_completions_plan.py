"""The completions door asks each provider whether it takes completions natively: no isinstance."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from llmmux.server.completions_api import plan
from llmmux.wire import completions as wire


def route(*natives: bool) -> Any:
    providers = [SimpleNamespace(native_completions=n, wire="not-openai") for n in natives]
    return SimpleNamespace(candidates=[SimpleNamespace(provider=p) for p in providers])


def test_any_provider_that_says_it_takes_completions_gets_the_body_as_sent() -> None:
    completion = wire.decode_request({"model": "m", "prompt": ["a", "b"]})
    assert plan(route(True, True), completion) == [(0, wire.native_request(completion))]


def test_one_provider_that_does_not_makes_it_chat_per_prompt() -> None:
    completion = wire.decode_request({"model": "m", "prompt": ["a", "b"]})
    parts = plan(route(True, False), completion)
    assert len(parts) == 2 and [first for first, _ in parts] == [0, 1]
