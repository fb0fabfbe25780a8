"""Each strategy orders a tier from the signals it is given; nothing here is live."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import pytest

from llmmux.config.size_bands import SizeBand, parse_band
from llmmux.health import LatencyStats
from llmmux.pricing import Price
from llmmux.routing.complexity import HIGH, LOW, MEDIUM, Complexity
from llmmux.routing.strategies import HINTS, STRATEGIES
from llmmux.routing.table import Candidate
from support.fakes import openai_provider

LOCAL = openai_provider("local", "http://127.0.0.1:8000/v1")
LAN = openai_provider("lan", "http://192.168.1.20:8000/v1")
CLOUD = openai_provider("cloud", "https://api.example.com/v1")
OTHER = openai_provider("other", "https://api.other.example/v1")


@dataclass
class Signals:
    stream: bool = False
    max_tokens: int | None = None
    size_bands: list[SizeBand] = field(default_factory=list)
    tokens: int = 1000
    level: str = LOW
    stats: dict[str, LatencyStats] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)
    free: dict[str, float] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    turns: Counter[str] = field(default_factory=Counter)
    prices: dict[str, Price | None] = field(default_factory=dict)

    def prompt_tokens(self) -> int:
        return self.tokens

    def complexity(self) -> Complexity:
        return Complexity(self.level, 0, ())

    def latency(self, candidate: Candidate) -> LatencyStats | None:
        return self.stats.get(candidate.provider.name)

    def in_flight(self, provider: str) -> int:
        return self.busy.get(provider, 0)

    def headroom(self, provider: str) -> float:
        return self.free.get(provider, 1.0)

    def random(self) -> float:
        return self.rng.random()

    def turn(self, key: str) -> int:
        self.turns[key] += 1
        return self.turns[key] - 1

    def price(self, candidate: Candidate) -> Price | None:
        return self.prices.get(candidate.provider.name)


def names(order: list[Candidate]) -> list[str]:
    return [c.provider.name for c in order]


def order(strategy: str, tier: list[Candidate], signals: Signals | None = None) -> list[str]:
    return names(STRATEGIES[strategy].order(tier, signals or Signals(), "route"))


def test_priority_keeps_the_configured_order() -> None:
    tier = [Candidate(CLOUD, "m"), Candidate(LOCAL, "m")]
    assert order("priority", tier) == ["cloud", "local"]


def test_weighted_first_picks_match_the_weights_within_two_points() -> None:
    tier = [Candidate(LOCAL, "m", weight=0.7), Candidate(LAN, "m", weight=0.2), Candidate(CLOUD, "m", weight=0.1)]
    signals = Signals(rng=random.Random(1234))
    draws = 20_000
    firsts = Counter(order("weighted", tier, signals)[0] for _ in range(draws))
    # Tolerance: 2 percentage points is over 6 standard deviations of a 20,000-draw binomial.
    for name, weight in (("local", 0.7), ("lan", 0.2), ("cloud", 0.1)):
        assert firsts[name] / draws == pytest.approx(weight, abs=0.02)


def test_weighted_keeps_every_candidate_as_a_fallback() -> None:
    tier = [Candidate(LOCAL, "m", weight=100), Candidate(CLOUD, "m", weight=0.001)]
    assert sorted(order("weighted", tier)) == ["cloud", "local"]


def test_round_robin_rotates_per_request() -> None:
    tier = [Candidate(LOCAL, "m"), Candidate(LAN, "m"), Candidate(CLOUD, "m")]
    signals = Signals()
    firsts = [order("round_robin", tier, signals)[0] for _ in range(6)]
    assert firsts == ["local", "lan", "cloud", "local", "lan", "cloud"]
    assert order("round_robin", tier, signals) == ["local", "lan", "cloud"]


def test_least_busy_prefers_fewest_in_flight_and_keeps_ties_in_order() -> None:
    tier = [Candidate(LOCAL, "m"), Candidate(LAN, "m"), Candidate(CLOUD, "m")]
    assert order("least_busy", tier, Signals(busy={"local": 3, "lan": 1, "cloud": 1})) == ["lan", "cloud", "local"]


def test_lowest_latency_uses_time_to_first_token_for_streams_and_measures_unknowns_first() -> None:
    fast_first = LatencyStats(latency_ms=3000, ttft_ms=100)
    fast_total = LatencyStats(latency_ms=800, ttft_ms=400)
    tier = [Candidate(LOCAL, "m"), Candidate(LAN, "m"), Candidate(CLOUD, "m")]
    stats = {"local": fast_first, "lan": fast_total}
    never_explore = random.Random(0)
    never_explore.random = lambda: 0.5  # type: ignore[method-assign]
    assert order("lowest_latency", tier, Signals(stats=stats, rng=never_explore)) == ["cloud", "lan", "local"]
    streaming = Signals(stream=True, stats=stats, rng=never_explore)
    assert order("lowest_latency", tier, streaming) == ["cloud", "local", "lan"]
    assert STRATEGIES["lowest_latency"].describe(tier[0], streaming) == "time to first token 100 ms"


def test_lowest_latency_explores_now_and_then() -> None:
    tier = [Candidate(LOCAL, "m"), Candidate(CLOUD, "m")]
    stats = {"local": LatencyStats(latency_ms=10), "cloud": LatencyStats(latency_ms=900)}
    signals = Signals(stats=stats, rng=random.Random(5))
    firsts = Counter(order("lowest_latency", tier, signals)[0] for _ in range(4000))
    assert 0.01 < firsts["cloud"] / 4000 < 0.05  # half of the 5% exploration lands on it


def test_cost_optimized_ranks_by_this_requests_tokens_and_unknown_prices_last() -> None:
    cheap_in, cheap_out, unknown, free = (
        Candidate(CLOUD, "a"),
        Candidate(OTHER, "b"),
        Candidate(LAN, "c"),
        Candidate(LOCAL, "d"),
    )
    prices = {"cloud": Price(0.1, 10.0), "other": Price(5.0, 0.2), "lan": None, "local": Price(0.0, 0.0)}
    tier = [unknown, cheap_out, cheap_in, free]
    # A long prompt with a short answer: input price dominates.
    long_prompt = Signals(tokens=100_000, max_tokens=10, prices=prices)
    assert order("cost_optimized", tier, long_prompt) == ["local", "cloud", "other", "lan"]
    # A short prompt with a long answer: output price dominates.
    long_answer = Signals(tokens=10, max_tokens=100_000, prices=prices)
    assert order("cost_optimized", tier, long_answer) == ["local", "other", "cloud", "lan"]
    assert STRATEGIES["cost_optimized"].describe(unknown, Signals(prices=prices)) == "price unknown"


def test_usage_based_prefers_the_most_headroom() -> None:
    tier = [Candidate(LOCAL, "m"), Candidate(CLOUD, "m"), Candidate(OTHER, "m")]
    assert order("usage_based", tier, Signals(free={"local": 0.1, "cloud": 0.9})) == ["other", "cloud", "local"]


def test_local_first_and_the_hints() -> None:
    tier = [Candidate(CLOUD, "m"), Candidate(LOCAL, "m"), Candidate(OTHER, "m"), Candidate(LAN, "m")]
    assert order("local_first", tier) == ["local", "lan", "cloud", "other"]
    assert names(HINTS["cloud_preferred"].order(tier, Signals(), "h")) == ["cloud", "other", "local", "lan"]
    assert names(HINTS["local_preferred"].order(tier, Signals(), "h")) == ["local", "lan", "cloud", "other"]


def test_quality_puts_rank_one_first_and_unranked_last() -> None:
    tier = [Candidate(LOCAL, "m"), Candidate(CLOUD, "m", quality=2), Candidate(OTHER, "m", quality=1)]
    assert order("quality", tier) == ["other", "cloud", "local"]
    assert names(HINTS["best_quality"].order(tier, Signals(), "h")) == ["other", "cloud", "local"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (LOW, ["small", "medium", "large", "unknown"]),
        (MEDIUM, ["medium", "large", "small", "unknown"]),
        (HIGH, ["large", "medium", "small", "unknown"]),
    ],
)
def test_complexity_picks_a_size_band(level: str, expected: list[str]) -> None:
    bands = [b for b in (parse_band("< 8B", "x"), parse_band("8B - 70B", "x"), parse_band("> 70B", "x")) if b]
    sized = {"small": 7.0, "medium": 13.0, "large": 671.0, "unknown": None}
    tier = [
        Candidate(openai_provider(n), "m", size_b=s)
        for n, s in (("unknown", sized["unknown"]), ("large", 671.0), ("small", 7.0), ("medium", 13.0))
    ]
    assert order("complexity", tier, Signals(level=level, size_bands=bands)) == expected
