"""The route table's groups: capabilities, redundant models, size bands, tiers and per-route policies."""

from __future__ import annotations

from typing import Any

import pytest

from llmmux.config import ConfigError
from llmmux.errors import ModelNotFound
from llmmux.loading import load
from support.fakes import TYPES, fake_router

CLOUD = "https://cloud.example.com/v1"


def base(**routing: Any) -> dict[str, Any]:
    return {
        "providers": {
            "ollama": {
                "models": [
                    {"name": "llama3.1:8b", "context_length": 8192, "quality_rank": 3},
                    {"name": "qwen2.5-coder:7b", "context_length": 32768},
                ]
            },
            "vllm": {
                "models": [{"name": "qwen-coder-vllm", "size": "7B", "context_length": 4096}, {"name": "llama3.1:8b"}]
            },
            "cloud": {
                "base_url": CLOUD,
                "models": [
                    {"name": "qwen3-coder:480b", "pricing": {"input": 1, "output": 2}},
                    {"name": "gpt-oss:120b"},
                    {"name": "gpt-oss:20b"},
                ],
            },
        },
        "routing": {
            "exact_matches": {
                "gpt-oss:120b": {"provider": "cloud", "fallback": ["gpt-oss:20b", "llama3.1:8b"]},
                "kimi": {"provider": "cloud", "model": "kimi-k2:1t", "fallback": "none"},
                **routing.pop("exact_matches", {}),
            }
        },
        **routing,
    }


def order(router: Any, name: str) -> list[tuple[str, int]]:
    return [(str(c), c.tier) for c in router.route(name).candidates]


def test_fallback_steps_are_tiers_and_candidates_carry_what_routing_needs() -> None:
    router = fake_router(base())
    assert order(router, "gpt-oss:120b") == [
        ("cloud/gpt-oss:120b", 0),
        ("cloud/gpt-oss:20b", 1),
        ("ollama/llama3.1:8b", 2),
        ("vllm/llama3.1:8b", 2),
    ]
    assert order(router, "kimi") == [("cloud/kimi-k2:1t", 0)]
    llama = router.route("llama3.1:8b").candidates
    assert [(c.context_length, c.quality, c.size_b) for c in llama] == [(8192, 3, 8.0), (None, None, 8.0)]
    coder = router.route("qwen3-coder:480b").candidates[0]
    price = router.table.pricing.known(coder.provider.name, coder.model)
    assert price is not None and price.input == 1.0
    assert router.route("llama3.1:8b").context_aware


def test_capabilities_keep_preferred_order_then_each_models_fallbacks() -> None:
    router = fake_router(
        base(
            capabilities={
                "code": {
                    "preferred_models": ["qwen3-coder:480b", "qwen-coder-vllm", "nope", "qwen2.5-coder:7b"],
                    "routing_strategy": "load_balance",
                },
                "reasoning": {"preferred_models": ["gpt-oss:120b"], "fallback": "qwen2.5-coder:7b"},
                "strict": {"preferred_models": ["gpt-oss:120b"], "fallback": "none"},
                "local": {"provider": "vllm"},
            }
        )
    )
    code = router.route("capability:code")
    assert order(router, "capability:code") == [
        ("cloud/qwen3-coder:480b", 0),
        ("vllm/qwen-coder-vllm", 0),
        ("ollama/qwen2.5-coder:7b", 0),
    ]
    assert code.policy.strategy == "weighted"
    assert "preferred model nope: skipped, not routable" in code.why
    assert order(router, "capability:reasoning") == [
        ("cloud/gpt-oss:120b", 0),
        ("cloud/gpt-oss:20b", 1),
        ("ollama/llama3.1:8b", 2),
        ("vllm/llama3.1:8b", 2),
        ("ollama/qwen2.5-coder:7b", 3),
    ]
    assert order(router, "capability:strict") == [("cloud/gpt-oss:120b", 0)]
    assert order(router, "capability:local") == [("vllm/qwen-coder-vllm", 0), ("vllm/llama3.1:8b", 0)]
    assert sorted(router.table.capabilities()) == ["code", "local", "reasoning", "strict"]
    assert "capability:code" in router.models()


def test_redundant_models_spread_by_weight_and_keep_their_fallbacks() -> None:
    router = fake_router(
        base(
            exact_matches={"popular": {"provider": "ollama", "model": "llama3.1:8b", "fallback": "gpt-oss:20b"}},
            redundant_models={
                "popular": {
                    "providers": [
                        {"provider": "ollama", "weight": 0.7, "model": "llama3.1:8b"},
                        {"provider": "vllm", "weight": 0.3, "model": "llama3.1:8b"},
                        {"provider": "cloud", "weight": 0},
                    ]
                }
            },
        )
    )
    route = router.route("popular")
    assert [(str(c), c.weight, c.tier) for c in route.candidates] == [
        ("ollama/llama3.1:8b", 0.7, 0),
        ("vllm/llama3.1:8b", 0.3, 0),
        ("cloud/gpt-oss:20b", 1.0, 1),
    ]
    assert route.policy.strategy == "weighted"


def test_model_size_routing_orders_providers_and_routes_unlisted_sized_names() -> None:
    router = fake_router(
        base(
            model_size_routing=[
                {"size": "< 8B", "provider": "ollama"},
                {"size": "8B - 13B", "provider": "vllm"},
                {"size": "> 13B", "provider": "cloud"},
            ]
        )
    )
    # llama3.1:8b is in the 8B-13B band: vllm first.
    assert order(router, "llama3.1:8b") == [("vllm/llama3.1:8b", 0), ("ollama/llama3.1:8b", 0)]
    assert order(router, "deepseek-v3.1:671b") == [("cloud/deepseek-v3.1:671b", 0)]
    assert "model_size_routing '> 13B' (671B)" in router.route("deepseek-v3.1:671b").source
    assert order(router, "mistral:7b") == [("ollama/mistral:7b", 0)]
    with pytest.raises(ModelNotFound):
        router.route("mystery-model")


def test_a_policy_for_a_route_that_does_not_exist_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    fake_router(base(routing_strategy={"routes": {"gtp-4o": "quality", "kimi": "quality"}}))
    assert "routing_strategy.routes.gtp-4o: no route has that name" in caplog.text
    assert "routes.kimi" not in caplog.text


def test_policies_per_route_over_group_over_default() -> None:
    router = fake_router(
        base(
            capabilities={"code": {"preferred_models": ["qwen2.5-coder:7b"], "routing_strategy": "fastest_response"}},
            routing_strategy={
                "default": "least_busy",
                "max_fallbacks": 2,
                "fallback_on": ["rate_limit", 503],
                "routes": {
                    "kimi": {"strategy": "quality", "hedge": {"after_ms": 300}},
                    "capability:code": {"max_wait_seconds": 0},
                },
            },
        )
    )
    default = router.route("gpt-oss:120b").policy
    assert (default.strategy, default.max_fallbacks, default.fallback_on) == (
        "least_busy",
        2,
        frozenset({"rate_limited", "503"}),
    )
    kimi = router.route("kimi").policy
    assert kimi.strategy == "quality" and kimi.hedge is not None and kimi.hedge.after_ms == 300
    code = router.route("capability:code").policy
    assert (code.strategy, code.max_wait_s, code.max_fallbacks) == ("lowest_latency", 0.0, 2)


@pytest.mark.parametrize(
    ("routing", "path"),
    [
        ({"routing_strategy": "fastest-possible"}, "routing_strategy.default.strategy"),
        ({"routing_strategy": {"fallback_on": ["teapot"]}}, "routing_strategy.fallback_on"),
        (
            {"redundant_models": {"x": {"providers": [{"provider": "ghost"}]}}},
            "redundant_models.x.providers[0].provider",
        ),
        ({"model_size_routing": [{"size": "< 8B", "provider": "ghost"}]}, "model_size_routing[0].provider"),
        ({"capabilities": {"code": {"routing_strategy": "priority"}}}, "capabilities.code"),
        ({"rate_limit_settings": {"limits": {"ollama": {"rpm": -1}}}}, "rate_limit_settings.limits.ollama.rpm"),
    ],
)
def test_bad_routing_sections_refuse_to_load_with_the_key_path(routing: dict[str, Any], path: str) -> None:
    config = base(**routing)
    config["providers"] = {name: {"type": "fake", **p} for name, p in config["providers"].items()}
    with pytest.raises(ConfigError) as info:
        load(config, types=TYPES).raise_for_errors()
    assert path in {p.path for p in info.value.problems if p.severity == "error"}
