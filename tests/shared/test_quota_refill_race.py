"""A budget's slice and its background top-up: money reserved while a finished request's cost
was on its way to the store must not admit a request past the budget (on a real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from llmmux.shared import Shared
from llmmux.shared.redis_store import RedisStore
from llmmux.shared.store import Ask, Grant

COST = 1 / 256  # binary fractions: sums are exact
BUDGET = 4.0  # a slice holds at most $4 / 64 = 16 requests' worth: it leases


class GatedRefills(RedisStore):
    """Redis, with the answer to a slice's background top-up held back until `opened`."""

    def __init__(self, url: str) -> None:
        super().__init__(url, prefix="race:")
        self.opened = asyncio.Event()
        self.refills = 0

    async def acquire(self, name: str, ask: Ask) -> Grant:
        grant = await super().acquire(name, ask)
        if not ask.tpm_need and ask.money_more > 0:  # a top-up: no request of its own
            self.refills += 1
            await self.opened.wait()
        return grant


@pytest.fixture
async def gated(redis_url: str) -> AsyncIterator[Shared]:
    handle = Shared(GatedRefills(redis_url), instance="a", timeout_s=5.0)
    await handle.start()
    handle.quotas.clock = lambda: 0.0  # one lease period however slow the machine: nothing goes back
    yield handle
    handle.store.opened.set()  # type: ignore[attr-defined]
    await handle.aclose()


async def admit(handle: Shared, seed: float) -> bool:
    grant = await handle.quotas.admit("key.b", spend_key="key.b:0", spend_seed=seed, budget=BUDGET)
    return grant.funded or (grant.spend is not None and grant.spend < BUDGET)


async def finish(handle: Shared, cost: float) -> None:
    handle.quotas.release("key.b", spend_key="key.b:0", cost=cost)
    await asyncio.sleep(0.05)  # what goes to the store gets there


async def test_a_top_up_racing_a_cost_past_the_budget_admits_no_request_after_it(gated: Shared) -> None:
    seed = BUDGET - 6.75 * COST
    assert await admit(gated, seed)  # asks the store: nothing to size a slice by yet
    await finish(gated, COST)
    assert await admit(gated, seed)  # asks the store, and leases 2 requests' worth
    await finish(gated, 1.75 * COST)  # the slice is down to a quarter of a request: low
    assert await admit(gated, seed)  # from the slice; its top-up leases the last 3.75 requests' worth
    await asyncio.sleep(0.05)
    assert gated.store.refills == 1  # type: ignore[attr-defined]
    # Finishing while the top-up is on its way, the request costs 4: $4 spent, the budget is gone.
    await finish(gated, 4 * COST)
    gated.store.opened.set()  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    assert not await admit(gated, seed)  # before: admitted from the money the top-up reserved
    spend = (await gated.store.acquire("key.b", Ask(spend_key="key.b:0"))).spend
    assert spend == BUDGET  # nothing counted twice: what was spent, exactly
