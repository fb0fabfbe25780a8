"""`Quotas`: an instance's slices of shared limits, exact in total, on a real holder."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from llmmux.shared import Shared
from llmmux.shared.holder import Holder, HolderStore
from llmmux.shared.quota import LEASE_S
from llmmux.shared.store import Ask, Grant


class CountingStore(HolderStore):
    """A holder connection that counts the round trips that decide admissions."""

    acquires = 0

    async def acquire(self, name: str, ask: Ask) -> Grant:
        self.acquires += 1
        return await super().acquire(name, ask)


@pytest.fixture
async def fleet() -> AsyncIterator[Callable[..., Any]]:
    path = os.path.join(tempfile.mkdtemp(prefix="llmmux-holder-"), "state.sock")
    server = asyncio.ensure_future(Holder().serve(path))
    while not os.path.exists(path):
        await asyncio.sleep(0.01)
    handles: list[Shared] = []

    async def instance(name: str, live: int = 1) -> Shared:
        # A generous timeout: 1,200 requests at once on a loaded machine must not read as an outage.
        handle = Shared(CountingStore(path), instance=name, timeout_s=5.0)
        await handle.start()
        handle.live_instances = live
        handles.append(handle)
        return handle

    yield instance
    for handle in handles:
        await handle.aclose()
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await server


async def admitted(handle: Shared, name: str, n: int, **limits: Any) -> int:
    grants = [await handle.quotas.admit(name, **limits) for _ in range(n)]
    return sum(not g.wait for g in grants)


async def test_a_large_limit_is_served_from_the_slice_without_a_round_trip_each(fleet: Callable[..., Any]) -> None:
    handle = await fleet("a")
    assert await admitted(handle, "provider.p", 2000, rpm=640_000) == 2000
    await asyncio.sleep(0.05)  # background top-ups finish
    # The slice doubles while it runs low: a handful of round trips, not 2,000.
    assert handle.store.acquires < 30


async def test_a_small_limit_leases_nothing_and_asks_every_time(fleet: Callable[..., Any]) -> None:
    handle = await fleet("a", live=3)
    assert await admitted(handle, "provider.p", 70, rpm=60) == 60
    assert handle.store.acquires == 70


async def test_slices_never_admit_more_than_the_limit_across_instances(fleet: Callable[..., Any]) -> None:
    a, b = await fleet("a", live=2), await fleet("b", live=2)
    started = time.monotonic()
    total = 0
    for _ in range(40):  # interleaved bursts, as a load balancer spreads them
        total += await admitted(a, "key.k", 150, rpm=6400)
        total += await admitted(b, "key.k", 150, rpm=6400)
    refill = 6400 / 60 * (time.monotonic() - started)
    assert total <= 6400 + refill + 1
    # Tokens parked on one instance's slice are at most 6400 / (64 × 2) = 50 each.
    assert total >= 6400 - 2 * 50


async def test_unused_tokens_go_back_after_the_period(fleet: Callable[..., Any]) -> None:
    a, b = await fleet("a"), await fleet("b")
    assert await admitted(a, "provider.p", 200, rpm=64_000) == 200
    await asyncio.sleep(0.05)
    held = a.quotas._slices["provider.p"].requests
    assert held > 0
    # The first period after a busy one keeps what the next would need; an idle one gives all back.
    for _ in range(2):
        await asyncio.sleep(LEASE_S)
        a.quotas.sweep()  # what the heartbeat loop does every second
    await asyncio.sleep(0.05)
    assert a.quotas._slices["provider.p"].requests == 0
    # Everything but what a used is there for b (it asks in one go for all that is left).
    grant = await b.store.acquire("provider.p", Ask(rpm=64_000, rpm_more=64_000))
    assert grant.requests >= 64_000 - 200 - 1


async def test_concurrency_slots_held_across_instances_never_exceed_the_cap(fleet: Callable[..., Any]) -> None:
    a, b = await fleet("a", live=2), await fleet("b", live=2)
    cap = 512  # a slice may keep 512 / (64 × 2) = 4 spare slots
    in_use = [0]
    peak = [0]

    async def request(handle: Shared) -> bool:
        grant = await handle.quotas.admit("provider.c", cap=cap)
        if grant.wait:
            return False
        in_use[0] += 1
        peak[0] = max(peak[0], in_use[0])
        await asyncio.sleep(0.01)
        in_use[0] -= 1
        handle.quotas.release("provider.c", cap=cap)
        return True

    results = await asyncio.gather(*(request(a if i % 2 else b) for i in range(1200)))
    assert peak[0] <= cap
    assert sum(results) >= cap - 2 * 4  # it ran up to the cap, less what slices kept spare
    await asyncio.sleep(0.05)
    # Idle now: each keeps at most its few spare slots; the rest went back.
    held = sum(h.quotas._slices["provider.c"].slots for h in (a, b))
    assert held <= 2 * 4


async def tokens_admitted(handle: Shared, name: str, n: int, tpm: int, used: int) -> int:
    """`n` requests estimated at `used` tokens that use as many: the tokens of those admitted."""
    total = 0
    for _ in range(n):
        grant = await handle.quotas.admit(name, tpm=tpm, tokens=used)
        if not grant.wait:
            total += used
            handle.quotas.release(name, tpm=tpm, tokens=0, estimate=used)
            await asyncio.sleep(0)  # what goes to the store is sent before the next request
    return total


async def test_a_large_tpm_is_served_from_the_slice_and_exact_across_instances(fleet: Callable[..., Any]) -> None:
    a, b = await fleet("a", live=2), await fleet("b", live=2)
    tpm = 64_000  # a slice holds at most 64,000 / (64 × 2) = 500 tokens: five requests of 100
    started = time.monotonic()
    total = 0
    for _ in range(10):  # 40,000 tokens: within the limit
        total += await tokens_admitted(a, "provider.t", 20, tpm, 100)
        total += await tokens_admitted(b, "provider.t", 20, tpm, 100)
    # Before tpm slices every admission was a round trip: 400 of them.
    assert total == 40_000 and a.store.acquires + b.store.acquires < 150
    for _ in range(30):  # 120,000 tokens more asked for: the limit runs out
        total += await tokens_admitted(a, "provider.t", 20, tpm, 100)
        total += await tokens_admitted(b, "provider.t", 20, tpm, 100)
    refill = tpm / 60 * (time.monotonic() - started)
    assert total <= tpm + refill + 100
    assert total >= tpm - 2 * 500


async def test_tokens_used_past_the_estimate_are_settled_from_the_slice_then_the_store(
    fleet: Callable[..., Any],
) -> None:
    a = await fleet("a")
    tpm = 6_400_000  # a slice of up to 100,000 tokens
    for _ in range(50):  # a key's admission estimates 0 tokens; each reply used 1,000
        assert not (await a.quotas.admit("key.k", tpm=tpm)).wait
        a.quotas.release("key.k", tpm=tpm, tokens=1_000)
    assert a.store.acquires < 10
    await asyncio.sleep(0.05)
    for _ in range(2):  # busy, then idle: everything not used goes back
        await asyncio.sleep(LEASE_S)
        a.quotas.sweep()
    await asyncio.sleep(0.05)
    assert a.quotas._slices["key.k"].tokens.held == 0
    left = await a.store.acquire("key.k", Ask(tpm=tpm, tpm_need=False, tpm_more=tpm))
    assert tpm - 50_000 <= left.tokens <= tpm - 50_000 + tpm / 60 * 4  # the 50,000 used, and the refill


async def spent_until_refused(handle: Shared, n: int, budget: float, cost: float) -> int:
    """Requests admitted against `budget` (each then costing `cost`) out of `n`."""
    admitted = 0
    for _ in range(n):
        grant = await handle.quotas.admit("key.b", spend_key="key.b:0", budget=budget)
        if grant.funded or (grant.spend is not None and grant.spend < budget):
            admitted += 1
            handle.quotas.release("key.b", spend_key="key.b:0", cost=cost)
            await asyncio.sleep(0)  # what goes to the store is sent before the next request
    return admitted


async def test_a_large_budget_is_spent_from_slices_and_stops_at_the_budget(fleet: Callable[..., Any]) -> None:
    a, b = await fleet("a", live=2), await fleet("b", live=2)
    # Costs in binary fractions, so that sums are exact. A slice holds at most $5 / (64 × 2):
    # five requests of 1/128.
    budget, cost = 5.0, 1 / 128
    admitted = 0
    for _ in range(80):  # one request after another: nothing in flight when the budget runs out
        admitted += await spent_until_refused(a, 5, budget, cost)
        admitted += await spent_until_refused(b, 5, budget, cost)
    assert admitted == 640  # $5 exactly: no overshoot, and money parked in slices was not lost
    assert a.store.acquires + b.store.acquires < 400  # before: one round trip each, 800
    for handle in (a, b):
        handle.quotas._slices["key.b"].until = 0.0
        handle.quotas.sweep()
    await asyncio.sleep(0.05)
    spend = (await a.store.acquire("key.b", Ask(spend_key="key.b:0"))).spend
    assert spend == 5.0  # what was reserved and not spent went back


async def test_a_small_budget_leases_nothing(fleet: Callable[..., Any]) -> None:
    a = await fleet("a", live=3)
    assert await spent_until_refused(a, 12, 10 / 8, 1 / 8) == 10
    assert a.store.acquires == 12
