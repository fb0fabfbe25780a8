"""Planning a request: capability, pin, context windows, strategy within tiers, hints, explanations."""

from __future__ import annotations

from typing import Any

import pytest

from llmmux.errors import InvalidRequest
from llmmux.router import Router
from llmmux.types import ChatRequest, Message
from support.fakes import fake_router

CLOUD = "https://cloud.example.com/v1"


def router(**sections: Any) -> Router:
    return fake_router(
        {
            "providers": {
                "small": {"models": [{"name": "chat", "context_length": 1000, "quality_rank": 3}]},
                "big": {"models": [{"name": "chat", "context_length": 100_000, "quality_rank": 2}]},
                "cloud": {
                    "base_url": CLOUD,
                    "models": [
                        {"name": "chat", "quality_rank": 1, "pricing": {"input": 5, "output": 15}},
                        {"name": "tiny", "pricing": {"input": 0.1, "output": 0.1}},
                    ],
                },
            },
            "routing": {
                "exact_matches": {"main": {"provider": "small", "model": "chat", "fallback": ["big", "cloud"]}}
            },
            "capabilities": {"code": {"preferred_models": ["chat"]}, "writing": {"preferred_models": ["tiny"]}},
            **sections,
        }
    )


def request(model: str = "main", tokens: int = 10, **kw: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=[Message(role="user", content="x" * (4 * tokens))], **kw)


def plan(r: Router, req: ChatRequest) -> list[str]:
    return [str(c) for c in r.pipeline.plan(req).candidates]


def test_a_plain_priority_request_is_the_routes_own_list_with_nothing_computed() -> None:
    r = router()
    p = r.pipeline.plan(request("tiny"))
    assert p.candidates is r.route("tiny").candidates  # the hot path copies nothing
    assert p.signals.known_tokens() is None and p.explanation is None
    assert plan(r, request()) == ["small/chat", "big/chat", "cloud/chat"]


def test_candidates_whose_window_cannot_hold_prompt_and_max_tokens_are_dropped() -> None:
    r = router()
    assert plan(r, request(tokens=900)) == ["small/chat", "big/chat", "cloud/chat"]
    assert plan(r, request(tokens=900, max_tokens=200)) == ["big/chat", "cloud/chat"]
    with pytest.raises(InvalidRequest) as info:
        plan(r, request("small/chat", tokens=2000))
    assert info.value.code == "context_length_exceeded" and info.value.status == 400
    assert "largest context window among the candidates is 1000" in info.value.message


def test_capability_by_model_prefix_or_field_and_unknown_ones_are_400() -> None:
    r = router()
    assert plan(r, request("capability:code")) == ["small/chat", "big/chat", "cloud/chat"]
    assert plan(r, request("anything", capability="writing")) == ["cloud/tiny"]
    with pytest.raises(InvalidRequest) as info:
        plan(r, request("auto", capability="poetry"))
    assert info.value.param == "capability" and "known capabilities: code, writing" in info.value.message


def test_provider_pin_keeps_only_that_provider() -> None:
    r = router()
    assert plan(r, request(provider="cloud")) == ["cloud/chat"]
    with pytest.raises(InvalidRequest):
        plan(r, request("capability:writing", provider="small"))


def test_strategies_reorder_within_tiers_only() -> None:
    r = router(routing_strategy={"routes": {"main": "cost_optimized", "capability:code": "cost_optimized"}})
    # main's fallbacks are tiers: cost does not move the cloud fallback ahead of the local primary.
    assert plan(r, request()) == ["small/chat", "big/chat", "cloud/chat"]
    # A capability's preferred models are one tier: the strategy chooses among them.
    assert plan(r, request("capability:code"))[-1] == "cloud/chat"


def test_hints_reorder_across_tiers() -> None:
    r = router()
    assert plan(r, request(provider_hint="best_quality")) == ["cloud/chat", "big/chat", "small/chat"]
    assert plan(r, request(provider_hint="cloud_preferred")) == ["cloud/chat", "small/chat", "big/chat"]
    assert plan(r, request(provider_hint="cheapest"))[-1] == "cloud/chat"
    with pytest.raises(InvalidRequest) as info:
        plan(r, request(provider_hint="fastest"))
    assert info.value.param == "provider_hint"


def test_explanation_names_every_step_and_the_final_order() -> None:
    r = router(routing_strategy={"max_fallbacks": 1})
    explanation = r.explain(request(tokens=900, max_tokens=200, provider_hint="local_preferred"))
    text = "\n".join(explanation.lines())
    assert "main: matched by exact match" in text
    assert "dropped small/chat: context window 1000 < 1107" in text
    assert "strategy: strategy priority, max_fallbacks 1" in text
    assert "hint: local_preferred" in text
    assert "1. big  model=chat  (tier 1; local)" in text
    header = explanation.header()
    assert header.isascii() and "order=big/chat,cloud/chat" in header
    assert explanation.to_dict()["order"][0]["candidate"] == "big/chat"


def test_explanation_shows_health_and_limits() -> None:
    r = router(rate_limit_settings={"limits": {"cloud": {"rpm": 10}, "big": {"max_concurrency": 1}}})
    for _ in range(3):
        r.health.failed("small", "boom")
    permit = r.limiter.acquire("big")
    text = "\n".join(r.explain(request()).lines())
    assert "dropped small/chat: cooldown, retry in 10 s (3 failures in a row: boom)" in text
    assert "limits rpm 10, 100% free" in text
    assert "dropped big/chat: at its limits (max_concurrency 1)" in text
    r.limiter.release(permit)  # type: ignore[arg-type]
    assert "at its limits" not in "\n".join(r.explain(request()).lines())
