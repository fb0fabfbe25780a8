"""Routing strategies: each orders one tier of candidates, given what is known right now.

A strategy only reorders; it never drops a candidate (the ones it ranks last are still
fallbacks). Each is a small class with `order` and `describe` (what it ranked a candidate
by, for `llmmux route` and the debug header), reading live signals through `Signals`.

    priority        the configured order
    weighted        random, in proportion to each candidate's weight (redundant_models)
    round_robin     each request starts one further along
    least_busy      fewest requests in flight to the provider
    lowest_latency  lowest average time to first token (streams) or to the answer
    cost_optimized  cheapest estimated cost for this request's tokens
    usage_based     most headroom left under the provider's rpm/tpm/concurrency limits
    local_first     local providers before cloud ones
    quality         best quality rank first (1 is best; unranked last)
    complexity      the prompt's complexity picks a model size band (see complexity.py)
"""

from __future__ import annotations

import math
from typing import Protocol

from ..config.size_bands import SizeBand, band_index, parse_band
from ..health.signals import LatencyStats
from ..pricing import Price
from .complexity import HIGH, LOW, Complexity
from .table import Candidate

EXPLORE = 0.05  # lowest_latency tries a random order now and then, so a stale average heals
DEFAULT_COMPLETION_TOKENS = 256  # cost estimate when the request sets no max_tokens
DEFAULT_BANDS = [b for b in (parse_band("< 10B", ""), parse_band("10B - 70B", ""), parse_band("> 70B", "")) if b]


class Signals(Protocol):
    """What strategies may read about the request and the candidates, right now."""

    stream: bool
    max_tokens: int | None
    size_bands: list[SizeBand]

    def prompt_tokens(self) -> int: ...
    def complexity(self) -> Complexity: ...
    def latency(self, candidate: Candidate) -> LatencyStats | None: ...
    def in_flight(self, provider: str) -> int: ...
    def headroom(self, provider: str) -> float: ...
    def random(self) -> float: ...
    def turn(self, key: str) -> int: ...
    def price(self, candidate: Candidate) -> Price | None: ...


class Strategy:
    name = "priority"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        return tier

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        return ""


class Weighted(Strategy):
    name = "weighted"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        # Efraimidis-Spirakis: sorting by -ln(u)/w draws without replacement in proportion
        # to the weights, so the first pick matches them and the rest are fair fallbacks.
        keyed = [(-math.log(1.0 - signals.random()) / c.weight, i, c) for i, c in enumerate(tier)]
        return [c for _, _, c in sorted(keyed)]

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        return f"weight {candidate.weight:g}"


class RoundRobin(Strategy):
    name = "round_robin"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        start = signals.turn(key) % len(tier)
        return tier[start:] + tier[:start]


class LeastBusy(Strategy):
    name = "least_busy"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        return sorted(tier, key=lambda c: signals.in_flight(c.provider.name))

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        return f"{signals.in_flight(candidate.provider.name)} in flight"


class LowestLatency(Strategy):
    name = "lowest_latency"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        if signals.random() < EXPLORE:
            return sorted(tier, key=lambda c: signals.random())
        return sorted(tier, key=lambda c: self._ms(c, signals))

    @staticmethod
    def _ms(candidate: Candidate, signals: Signals) -> float:
        stats = signals.latency(candidate)
        value = stats.first_token_ms(signals.stream) if stats else None
        return 0.0 if value is None else value  # unmeasured first: that is how it gets measured

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        stats = signals.latency(candidate)
        value = stats.first_token_ms(signals.stream) if stats else None
        what = "time to first token" if signals.stream else "latency"
        return f"{what} {value:.0f} ms" if value is not None else "not measured yet"


class CostOptimized(Strategy):
    name = "cost_optimized"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        return sorted(tier, key=lambda c: self._cost(c, signals))

    @staticmethod
    def _cost(candidate: Candidate, signals: Signals) -> float:
        price = signals.price(candidate)
        if price is None:
            return math.inf
        completion = signals.max_tokens if signals.max_tokens is not None else DEFAULT_COMPLETION_TOKENS
        return price.estimate(signals.prompt_tokens(), completion)

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        cost = self._cost(candidate, signals)
        return "price unknown" if cost == math.inf else f"~${cost:.6f}"


class UsageBased(Strategy):
    name = "usage_based"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        return sorted(tier, key=lambda c: -signals.headroom(c.provider.name))

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        return f"{signals.headroom(candidate.provider.name):.0%} of its limits free"


class LocalFirst(Strategy):
    name = "local_first"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        return sorted(tier, key=lambda c: not c.local)

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        return "local" if candidate.local else "cloud"


class CloudFirst(LocalFirst):
    name = "cloud_first"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        return sorted(tier, key=lambda c: bool(c.local))


class Quality(Strategy):
    name = "quality"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        return sorted(tier, key=lambda c: c.quality if c.quality is not None else math.inf)

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        return f"quality rank {candidate.quality}" if candidate.quality is not None else "unranked"


class BySize(Strategy):
    """Complexity routing: low requests to the smallest size band, high ones to the largest.

    After the target band come the larger bands (closest first), then the smaller ones;
    candidates of unknown size come last.
    """

    name = "complexity"

    def order(self, tier: list[Candidate], signals: Signals, key: str) -> list[Candidate]:
        bands = signals.size_bands or DEFAULT_BANDS
        target = self._target(signals.complexity(), len(bands))

        def fit(c: Candidate) -> tuple[int, int]:
            index = band_index(bands, c.size_b)
            if index is None:
                return (3, 0)
            if index == target:
                return (0, 0)
            return (1, index - target) if index > target else (2, target - index)

        return sorted(tier, key=fit)

    @staticmethod
    def _target(complexity: Complexity, bands: int) -> int:
        if complexity.level == LOW:
            return 0
        if complexity.level == HIGH:
            return bands - 1
        return bands // 2

    def describe(self, candidate: Candidate, signals: Signals) -> str:
        return f"{candidate.size_b:g}B" if candidate.size_b is not None else "size unknown"


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy(),
        Weighted(),
        RoundRobin(),
        LeastBusy(),
        LowestLatency(),
        CostOptimized(),
        UsageBased(),
        LocalFirst(),
        Quality(),
        BySize(),
    )
}

HINTS: dict[str, Strategy] = {
    "local_preferred": LocalFirst(),
    "cloud_preferred": CloudFirst(),
    "best_quality": Quality(),
    "cheapest": CostOptimized(),
}
