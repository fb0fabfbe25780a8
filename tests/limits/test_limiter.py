"""Per-provider limits: concurrency, rpm, tpm, headroom, the bounded queue, and parsing."""

from __future__ import annotations

import math

from llmmux.config.fields import FieldReader
from llmmux.config.model import ProviderConfig
from llmmux.config.problems import Problems
from llmmux.limits import Limiter, LimitsConfig, Permit, ProviderLimits, parse_limits


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(**limits: ProviderLimits) -> tuple[Limiter, Clock]:
    clock = Clock()
    return Limiter(LimitsConfig(limits, queue_size=2), clock=clock), clock


def test_unlimited_providers_still_count_in_flight() -> None:
    lim, _ = limiter()
    permits = [lim.acquire("free") for _ in range(3)]
    assert all(isinstance(p, Permit) for p in permits) and lim.in_flight("free") == 3
    for p in permits:
        lim.release(p)  # type: ignore[arg-type]
    lim.release(permits[0])  # type: ignore[arg-type]  # twice is harmless
    assert lim.in_flight("free") == 0 and lim.headroom("free") == 1.0


def test_concurrency_cap_frees_on_release() -> None:
    lim, _ = limiter(vllm=ProviderLimits(max_concurrency=2))
    a, b = lim.acquire("vllm"), lim.acquire("vllm")
    assert lim.acquire("vllm") == math.inf
    assert lim.headroom("vllm") == 0.0
    lim.release(a)  # type: ignore[arg-type]
    assert isinstance(lim.acquire("vllm"), Permit)
    assert isinstance(b, Permit)


def test_rpm_says_how_long_to_wait() -> None:
    lim, clock = limiter(cloud=ProviderLimits(rpm=2))
    assert isinstance(lim.acquire("cloud"), Permit) and isinstance(lim.acquire("cloud"), Permit)
    assert lim.acquire("cloud") == 30.0
    clock.now = 30.0
    assert isinstance(lim.acquire("cloud"), Permit)


def test_tpm_reserves_the_estimate_and_settles_with_usage_without_taking_a_request_slot() -> None:
    lim, clock = limiter(cloud=ProviderLimits(rpm=10, tpm=1000))
    permit = lim.acquire("cloud", 600)
    assert isinstance(permit, Permit)
    lim.release(permit, used_tokens=900)  # 300 more than reserved: 100 left
    wait = lim.acquire("cloud", 400)
    assert wait == 18.0  # 300 tokens at 1000/60 a second
    # The refused request did not use up a request slot: 9 of 10 rpm remain.
    assert lim.headroom("cloud") == 0.1
    clock.now = 18.0
    assert isinstance(lim.acquire("cloud", 400), Permit)


def test_queue_is_bounded() -> None:
    lim, _ = limiter()
    assert lim.enqueue() and lim.enqueue()
    assert not lim.enqueue()
    lim.dequeue()
    assert lim.enqueue()


def test_parse_seed_section_and_provider_max_concurrency() -> None:
    providers = {
        "new_provider": ProviderConfig("new_provider", "openai_compatible"),
        "vllm": ProviderConfig("vllm", "vllm", max_concurrency=8),
    }
    problems = Problems()
    config = parse_limits(
        {
            "enabled": True,
            "limits": {
                "new_provider": {"rpm": 60, "tpm": 100000},
                "vllm": {"rpm": 600},
                "ghost": {"rpm": 1},
                "bad": {"rpm": 0},
            },
            "queue_size": 5,
        },
        providers,
        FieldReader("f", problems),
    )
    assert config.providers["new_provider"] == ProviderLimits(rpm=60, tpm=100000)
    assert config.providers["vllm"] == ProviderLimits(rpm=600, max_concurrency=8)
    assert config.queue_size == 5
    assert {(p.severity, p.path) for p in problems} >= {
        ("warning", "rate_limit_settings.limits.ghost"),
        ("error", "rate_limit_settings.limits.bad.rpm"),
    }


def test_disabled_section_keeps_only_concurrency_caps() -> None:
    providers = {"vllm": ProviderConfig("vllm", "vllm", max_concurrency=8)}
    config = parse_limits({"enabled": False, "limits": {"vllm": {"rpm": 1}}}, providers, FieldReader("f", Problems()))
    assert config.providers == {"vllm": ProviderLimits(max_concurrency=8)}
