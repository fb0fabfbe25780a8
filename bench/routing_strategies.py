"""Does any routing strategy cost measurably more than priority routing?

Each strategy routes the same request through the real pipeline (plan, health admission,
limits permit, one attempt, accounting, the request event) to in-process providers that
answer at once, so what is timed is routing's own cost. Strategies run interleaved in
rounds so drift on a shared machine hits them all alike. Prints microseconds per request,
and the difference from priority next to a calibration: the cost of a direct provider call.

    python bench/routing_strategies.py [--requests 20000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

from llmmux.config.loader import config_from_dict
from llmmux.config.route_policy import STRATEGY_NAMES
from llmmux.providers.base import Provider, ProviderType
from llmmux.providers.registry import PROVIDER_TYPES
from llmmux.router import Router
from llmmux.types import ChatChunk, ChatRequest, ChatResponse, Choice, Message, ModelInfo, Usage

STRATEGIES = STRATEGY_NAMES  # every built-in strategy
ANSWER = ChatResponse(
    id="r",
    model="m",
    created=0,
    choices=[Choice(message=Message(role="assistant", content="ok"), finish_reason="stop")],
    usage=Usage(prompt_tokens=5, completion_tokens=1, total_tokens=6),
)


class Instant(Provider):
    """Answers at once: the upstream costs nothing, so only routing is measured."""

    wire = "bench"

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        return ANSWER

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def list_models(self) -> list[ModelInfo]:
        return []


def build() -> Router:
    providers = {
        "local": {
            "base_url": "http://127.0.0.1:8000/v1",
            "max_concurrency": 64,
            "models": [{"name": "m", "context_length": 32768, "quality_rank": 3, "size": "8B"}],
        },
        "lan": {
            "base_url": "http://192.168.1.9:8000/v1",
            "models": [{"name": "m", "context_length": 8192, "quality_rank": 2, "size": "13B"}],
        },
        "cloud": {
            "base_url": "https://api.example.com/v1",
            "models": [
                {
                    "name": "m",
                    "context_length": 128000,
                    "quality_rank": 1,
                    "size": "120B",
                    "pricing": {"input": 2.5, "output": 10},
                }
            ],
        },
        "spare": {"base_url": "https://api.spare.example/v1", "models": ["m"]},
    }
    raw: dict[str, Any] = {
        "providers": {name: {"type": "bench", **p} for name, p in providers.items()},
        "redundant_models": {
            name: {
                "providers": [{"provider": p, "model": "m"} for p in ("local", "lan", "cloud")],
                "fallback": "spare/m",
            }
            for name in STRATEGIES
        },
        "routing_strategy": {"routes": {name: name for name in STRATEGIES}},
        "rate_limit_settings": {"limits": {"cloud": {"rpm": 10_000_000, "tpm": 10_000_000_000}}},
        "health_checks": {"enabled": False},
    }
    config, problems = config_from_dict(raw)
    assert not problems.errors, problems.errors
    return Router(config, types={**PROVIDER_TYPES, "bench": ProviderType("bench", Instant)})


def request(model: str) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[
            Message(role="system", content="You are terse."),
            Message(role="user", content="Summarise the plot of Hamlet. " * 20),
        ],
    )


async def batch(router: Router, model: str, n: int) -> list[float]:
    req = request(model)
    chat = router.pipeline.chat
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        await chat(req)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


async def direct(router: Router, n: int) -> list[float]:
    provider, req = router.providers["local"], request("priority")
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        await provider.complete(req, "m")
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


async def main(requests: int, rounds: int) -> None:
    router = build()
    per_round = max(1, requests // rounds)
    results: dict[str, list[float]] = {name: [] for name in STRATEGIES}
    for name in STRATEGIES:
        await batch(router, name, 500)  # warm up
    for _ in range(rounds):
        for name in STRATEGIES:
            results[name] += await batch(router, name, per_round)
    call = await direct(router, per_round)
    base = statistics.median(results["priority"])
    print(f"{requests} requests per strategy in {rounds} interleaved rounds; route of 3 candidates + 1 fallback")
    print(f"direct provider call (calibration): median {statistics.median(call):.2f} us")
    print(f"{'strategy':<16}{'median us':>10}{'p99 us':>10}{'vs priority':>13}")
    for name, samples in results.items():
        ordered = sorted(samples)
        median, p99 = statistics.median(ordered), ordered[int(len(ordered) * 0.99)]
        print(f"{name:<16}{median:>10.1f}{p99:>10.1f}{median - base:>+12.1f}us")
    await router.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds))
