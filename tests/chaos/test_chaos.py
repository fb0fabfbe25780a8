"""Chaos: fake upstreams over real HTTP failing in every way, flapping, under concurrent load.

The promises checked here: while any candidate is healthy no client sees an error; every
request is answered (nothing hangs); the breaker opens, holds and recovers as configured;
weighted routing follows its weights; after bytes went out, a failure is an error event.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any, Self

import httpx
import pytest

from llmmux.router import Router
from support import Gateway
from upstreams import (
    FakeOpenAI,
    closed_port_url,
    drop,
    drop_mid_stream,
    hang,
    malformed,
    stall_mid_stream,
    status,
    trickle,
)

USER = [{"role": "user", "content": "tell me something"}]
REQUESTS = 300
WEIGHTED_REQUESTS = 600
COOLDOWN = 1.5
CONCURRENCY = 50
# Fast deadlines so a hung upstream costs a fraction of a second, not a test run.
FAST = {"timeout": 0.5, "connect_timeout": 0.5, "first_token_timeout": 0.3, "stall_timeout": 0.3}
FAULTS = {
    "reset": drop(reset=True),  # TCP RST
    "hanging": hang(5),  # accepts and says nothing
    "limited": status(429, headers={"Retry-After": "1"}),
    "flaky": status(500),
    "overloaded": status(503),
    "garbage": malformed(),  # a 200 whose body is not JSON (or a garbage SSE event)
    "stalling": stall_mid_stream(0, 5),  # headers, then nothing before the first event
}


class Flapper:
    """Turns an upstream's failures on and off every `period` seconds, from a thread."""

    def __init__(self, upstream: FakeOpenAI, period: float) -> None:
        self.upstream, self.period = upstream, period
        self.flips = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.flips += 1
            self.upstream.set_default(status(503) if self.flips % 2 else None)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def chaos() -> Iterator[tuple[dict[str, FakeOpenAI], FakeOpenAI, FakeOpenAI]]:
    with ExitStack() as stack:
        faulty = {name: stack.enter_context(FakeOpenAI()) for name in FAULTS}
        for name, fault in FAULTS.items():
            faulty[name].set_default(fault)
        flappy = stack.enter_context(FakeOpenAI(echo_prefix="flappy: "))
        healthy = stack.enter_context(FakeOpenAI(echo_prefix="healthy: "))
        yield faulty, flappy, healthy


def chaos_config(faulty: dict[str, FakeOpenAI], flappy: FakeOpenAI, healthy: FakeOpenAI) -> dict[str, Any]:
    providers = {"refused": {"type": "openai_compatible", "base_url": closed_port_url(), "models": ["m"], **FAST}}
    providers |= {
        name: {"type": "openai_compatible", "base_url": up.url, "models": ["m"], **FAST} for name, up in faulty.items()
    }
    providers["flappy"] = {"type": "openai_compatible", "base_url": flappy.url, "models": ["m"], **FAST}
    providers["healthy"] = {"type": "openai_compatible", "base_url": healthy.url, "models": ["m"]}
    chain = [*providers][1:]
    return {
        "providers": providers,
        "routing": {"exact_matches": {"chaos": {"provider": "refused", "model": "m", "fallback": chain}}},
        "health_checks": {
            "interval_seconds": 0.25,
            "timeout_seconds": 0.3,
            "retry_attempts": 1,
            "failure_threshold": 2,
            "cooldown_seconds": 0.5,
        },
    }


async def one(http: httpx.AsyncClient, i: int, model: str = "chaos") -> tuple[int, str, str]:
    """Send request `i` (every third one streams); returns (status, provider, full text)."""
    body = {"model": model, "messages": USER, "stream": i % 3 == 0}
    if not body["stream"]:
        response = await http.post("/chat/completions", json=body)
        text = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else response.text
        return response.status_code, response.headers.get("x-llmmux-provider", ""), text
    async with http.stream("POST", "/chat/completions", json=body) as response:
        events = [line.removeprefix("data: ") async for line in response.aiter_lines() if line.startswith("data: ")]
    if events[-1] != "[DONE]" or any('"error"' in e for e in events):
        return 599, response.headers.get("x-llmmux-provider", ""), "\n".join(events)
    deltas = [json.loads(e)["choices"] for e in events[:-1]]
    text = "".join(c[0]["delta"].get("content") or "" for c in deltas if c)
    return response.status_code, response.headers["x-llmmux-provider"], text


async def load(url: str, count: int, model: str = "chaos") -> list[tuple[int, str, str]]:
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY)) as http:

        async def bounded(i: int) -> tuple[int, str, str]:
            async with limit:
                return await one(http, i, model)

        return await asyncio.wait_for(asyncio.gather(*(bounded(i) for i in range(count))), timeout=60)


def test_every_request_is_answered_while_any_candidate_is_healthy(
    chaos: tuple[dict[str, FakeOpenAI], FakeOpenAI, FakeOpenAI],
) -> None:
    faulty, flappy, healthy = chaos
    with Flapper(flappy, period=0.2) as flapper, Gateway(chaos_config(faulty, flappy, healthy)) as gw:
        started = time.monotonic()
        results = asyncio.run(load(gw.url, REQUESTS))
        elapsed = time.monotonic() - started
        report = {row["name"]: row for row in httpx.get(gw.root_url + "/health/providers").json()["providers"]}
    assert len(results) == REQUESTS
    errors = [r for r in results if r[0] != 200]
    assert errors == []
    assert {provider for _, provider, _ in results} <= {"flappy", "healthy"}
    assert all(text == f"{provider}: tell me something" for _, provider, text in results)
    assert flapper.flips >= 2 and elapsed < 30
    # The breaker opened on every failing upstream and held: each saw a fraction of the traffic.
    for name, upstream in faulty.items():
        assert report[name]["transitions"], name
        assert len(upstream.requests_to("/chat/completions")) < REQUESTS / 2, name
    assert report["refused"]["transitions"]
    assert len(healthy.requests_to("/chat/completions")) > REQUESTS / 2


def test_the_breaker_opens_holds_and_recovers_as_configured() -> None:
    with FakeOpenAI() as primary, FakeOpenAI(echo_prefix="backup: ") as backup:
        config = {
            "providers": {
                "primary": {"type": "openai_compatible", "base_url": primary.url, "models": ["m"]},
                "backup": {"type": "openai_compatible", "base_url": backup.url, "models": ["m"]},
            },
            "routing": {"exact_matches": {"m": {"provider": "primary", "model": "m", "fallback": "backup"}}},
            "health_checks": {"enabled": False, "failure_threshold": 3, "cooldown_seconds": COOLDOWN},
        }
        primary.set_default(status(503))
        with Gateway(config) as gw:
            started = time.monotonic()  # the breaker opens after this, so its cooldown ends after +COOLDOWN
            first = asyncio.run(load(gw.url, 40, "m"))
            assert [r[0] for r in first] == [200] * 40
            opened = len(primary.requests_to("/chat/completions"))
            # Requests in flight when it opened still reached it, but no more than the first wave.
            assert 3 <= opened <= CONCURRENCY
            held = asyncio.run(load(gw.url, 40, "m"))
            during = report(gw)
            assert [r[1] for r in held] == ["backup"] * 40 and during["state"] == "cooldown"
            # The cooldown holds: nothing more reached it, or (on a machine so slow that the
            # cooldown ran out meanwhile) only the one trial, which failed and restarted it.
            extra = len(primary.requests_to("/chat/completions")) - opened
            assert extra == 0 if time.monotonic() - started < COOLDOWN else extra <= 1
            primary.set_default(None)
            while not report(gw)["routable"]:  # the cooldown ends: half-open
                time.sleep(0.02)
            # The first request after the cooldown is the one trial; it succeeds and the rest follow.
            after = asyncio.run(load(gw.url, 40, "m"))
            again = asyncio.run(load(gw.url, 40, "m"))
            row = report(gw)
        assert [r[0] for r in after] == [200] * 40 and "primary" in {r[1] for r in after}
        assert [r[1] for r in again] == ["primary"] * 40
        assert row["state"] == "active"
        assert row["transitions"] == {"active->cooldown": 1, "cooldown->active": 1}


def report(gw: Gateway, provider: int = 0) -> dict[str, Any]:
    return httpx.get(gw.root_url + "/health/providers").json()["providers"][provider]  # type: ignore[no-any-return]


async def test_weighted_routing_follows_its_weights() -> None:
    # In-process client, real HTTP to the upstream: the client's own cost is left out.
    with FakeOpenAI() as up:
        config = {
            "providers": {name: {"type": "openai_compatible", "base_url": up.url, "models": ["m"]} for name in "abc"},
            "redundant_models": {
                "spread": {
                    "providers": [
                        {"provider": "a", "weight": 6, "model": "m"},
                        {"provider": "b", "weight": 3, "model": "m"},
                        {"provider": "c", "weight": 1, "model": "m"},
                    ]
                }
            },
            "health_checks": {"enabled": False},
        }
        limit = asyncio.Semaphore(CONCURRENCY)
        async with Router.from_config(config) as router:

            async def one_chat() -> str:
                async with limit:
                    return (await router.chat(model="spread", messages=USER)).provider

            providers = await asyncio.gather(*(one_chat() for _ in range(WEIGHTED_REQUESTS)))
    shares = Counter(providers)
    assert len(up.requests_to("/chat/completions")) == WEIGHTED_REQUESTS
    for name, weight in (("a", 0.6), ("b", 0.3), ("c", 0.1)):
        # Tolerance: 4 standard deviations of a binomial share (8 points for 60% of 600).
        tolerance = 4 * math.sqrt(weight * (1 - weight) / WEIGHTED_REQUESTS)
        assert shares[name] / WEIGHTED_REQUESTS == pytest.approx(weight, abs=tolerance), shares


def test_slow_trickles_are_not_stalls_but_stalls_and_drops_after_bytes_are_error_events() -> None:
    with FakeOpenAI() as up:
        config = {
            "providers": {"p": {"type": "openai_compatible", "base_url": up.url, "models": ["m"], "stall_timeout": 0.3}}
        }
        up.script(trickle(0.1), stall_mid_stream(2, 5), drop_mid_stream(2))
        with Gateway(config) as gw, httpx.Client(base_url=gw.url, timeout=10) as http:
            outcomes = []
            for _ in range(3):
                started = time.monotonic()
                with http.stream(
                    "POST", "/chat/completions", json={"model": "m", "messages": USER, "stream": True}
                ) as response:
                    events = [line for line in response.iter_lines() if line.startswith("data: ")]
                outcomes.append((response.status_code, events[-1], time.monotonic() - started))
    trickled, stalled, dropped = outcomes
    assert trickled[0] == 200 and trickled[1] == "data: [DONE]"
    assert stalled[0] == 200 and '"code":"stream_interrupted"' in stalled[1] and "stalled" in stalled[1]
    assert stalled[2] < 2.0  # cut at the stall timeout, not after the upstream's 5 s
    assert dropped[0] == 200 and '"code":"stream_interrupted"' in dropped[1]


def test_route_explains_each_decision_under_chaos(chaos: tuple[dict[str, FakeOpenAI], FakeOpenAI, FakeOpenAI]) -> None:
    faulty, flappy, healthy = chaos
    config = chaos_config(faulty, flappy, healthy)
    config["routing_strategy"] = {"debug_header": True}
    config["health_checks"] = {**config["health_checks"], "enabled": False, "cooldown_seconds": 30}
    with Gateway(config) as gw:
        asyncio.run(load(gw.url, 30))
        response = httpx.post(gw.url + "/chat/completions", json={"model": "chaos", "messages": USER})
    header = response.headers["x-llmmux-route"]
    assert "source=exact match" in header
    # Each failing provider the breaker took out is named with its state and why.
    for name in ("refused", "reset", "hanging", "flaky", "overloaded", "garbage", "stalling"):
        assert f"-{name}/m(cooldown" in header, header
    assert header.startswith("order=refused/m,") and "flappy/m,healthy/m;" in header
