"""A slice and its background top-up: tokens or money the store reserved while a finished
request's debt (what it used past its slice) was on its way there must not admit a request
past the limit, and what is netted goes back to the store (on a real Redis, valkey and the
holder: the race is the slice's, whichever store answers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable

import pytest

from llmmux.shared import Shared
from llmmux.shared.core import StoreCore
from llmmux.shared.holder import Holder, HolderStore
from llmmux.shared.redis_store import RedisStore
from llmmux.shared.store import Ask, Grant

COST = 1 / 256  # binary fractions: sums are exact
BUDGET = 4.0  # a slice holds at most $4 / 64 = 16 requests' worth: it leases
TPM = 65_536  # a slice holds at most 65,536 / 64 = 1,024 tokens: it leases


class Gated:
    """A store whose answer to a slice's background top-up (no request of its own) is held back
    until `opened`; `reserved` is what each top-up was granted, as the store answered it."""

    def gate(self) -> None:
        self.opened = asyncio.Event()
        self.reserved: list[tuple[int, float]] = []

    async def acquire(self, name: str, ask: Ask) -> Grant:
        grant: Grant = await super().acquire(name, ask)  # type: ignore[misc]
        if not ask.tpm_need and (ask.tpm_more or ask.money_more):
            self.reserved.append((grant.tokens, grant.money))
            await self.opened.wait()
        return grant


class GatedRedis(Gated, RedisStore):
    def __init__(self, url: str) -> None:
        super().__init__(url, prefix="race:")
        self.gate()

    async def tokens_left(self, name: str) -> float:
        """The tpm bucket's level less all its refill ever (`tokens - rate × updated`): it moves
        only by what is taken and given back, however long the test takes (the level stays far
        below the bucket's size, where refill is never cut off)."""
        tokens, updated = await self._redis.hmget(self._key("b", f"tpm.{name}"), "tokens", "updated")
        return float(tokens) - TPM / 60 * float(updated)


class GatedHolder(Gated, HolderStore):
    def __init__(self, path: str, core: StoreCore) -> None:
        super().__init__(path)
        self.core = core
        self.gate()

    async def tokens_left(self, name: str) -> float:
        level = self.core._buckets[f"tpm.{name}"]
        return level.tokens - TPM / 60 * level.updated


@contextlib.asynccontextmanager
async def holder() -> AsyncIterator[tuple[str, StoreCore]]:
    """A holder serving on a Unix socket in this process: its path, and its state to read."""
    path = os.path.join(tempfile.mkdtemp(prefix="llmmux-holder-"), "state.sock")
    core = StoreCore()
    server = asyncio.ensure_future(Holder(core).serve(path))
    try:
        await until(lambda: os.path.exists(path))
        yield path, core
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server


@pytest.fixture(params=["redis", "valkey", "holder"])
async def gated(request: pytest.FixtureRequest) -> AsyncIterator[Shared]:
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "holder":
            store: Gated = GatedHolder(*await stack.enter_async_context(holder()))
        else:
            store = GatedRedis(request.getfixturevalue(f"{request.param}_url"))
        handle = Shared(store, instance="a", timeout_s=5.0)  # type: ignore[arg-type]
        await handle.start()
        handle.quotas.clock = lambda: 0.0  # one lease period however slow the machine: nothing goes back
        yield handle
        store.opened.set()
        await handle.aclose()


class Money:
    """A budget's slice: a request costs a few `unit`s; `past` leaves the budget spent."""

    name, unit, past = "key.b", COST, 4 * COST
    exact = 0.0  # what the store counts is exact: binary fractions
    seed = BUDGET - 6.75 * COST  # what the ledger knows: 6.75 requests' worth is left

    async def admit(self, handle: Shared) -> bool:
        grant = await handle.quotas.admit(self.name, spend_key="key.b:0", spend_seed=self.seed, budget=BUDGET)
        return grant.funded or (grant.spend is not None and grant.spend < BUDGET)

    def finish(self, handle: Shared, cost: float) -> None:
        handle.quotas.release(self.name, spend_key="key.b:0", cost=cost)

    async def left(self, handle: Shared) -> float:
        spend = (await handle.store.acquire(self.name, Ask(spend_key="key.b:0"))).spend
        assert spend is not None
        return BUDGET - spend

    def held(self, handle: Shared) -> float:
        return handle.quotas._slices[self.name].money.held

    @staticmethod
    def reserved(lease: tuple[int, float]) -> float:
        return lease[1]


class Tokens:
    """A key's tpm slice (estimate 0: it admits while the slice holds any): a request uses a few
    `unit`s; `past` is two minutes' worth, so the bucket stays in debt for a minute."""

    name, unit, past = "key.t", 128, 2 * TPM
    exact = 1.0  # `left` is up to a tenth of a token off: Redis keeps `updated` to 0.1 ms

    async def admit(self, handle: Shared) -> bool:
        return not (await handle.quotas.admit(self.name, tpm=TPM)).wait

    def finish(self, handle: Shared, tokens: float) -> None:
        handle.quotas.release(self.name, tpm=TPM, tokens=int(tokens))

    async def left(self, handle: Shared) -> float:
        return float(await handle.store.tokens_left(self.name))  # type: ignore[attr-defined]

    def held(self, handle: Shared) -> float:
        return handle.quotas._slices[self.name].tokens.held

    @staticmethod
    def reserved(lease: tuple[int, float]) -> float:
        return lease[0]


Pool = Money | Tokens


@pytest.fixture(params=[Money, Tokens], ids=["money", "tokens"])
def pool(request: pytest.FixtureRequest) -> Pool:
    made: Pool = request.param()
    return made


async def until(done: Callable[[], bool]) -> None:
    """Wait (5 s at most) for `done`: what goes to the store in the background gets there."""
    deadline = time.monotonic() + 5.0
    while not done():
        assert time.monotonic() < deadline, "the store's round trips did not finish in 5 s"
        await asyncio.sleep(0.005)


async def settled(handle: Shared, held_back: int = 0) -> None:
    """Every release and top-up sent has been answered, but the `held_back` ones."""
    await until(lambda: len(handle._tasks) <= held_back)


async def run_low(handle: Shared, pool: Pool) -> None:
    """Bring the slice down to a quarter of a request's worth, so the next admission tops it up."""
    assert await pool.admit(handle)  # asks the store: nothing to size a slice by yet
    pool.finish(handle, pool.unit)
    await settled(handle)
    assert await pool.admit(handle)  # asks the store, and leases 2 requests' worth
    pool.finish(handle, 1.75 * pool.unit)  # the slice is down to a quarter of a request: low
    await settled(handle)


async def landed(handle: Shared, pool: Pool) -> tuple[float, float]:
    """Let the top-up held back land: what the store had left before, and what it reserved."""
    await settled(handle, held_back=1)
    before = await pool.left(handle)
    handle.store.opened.set()  # type: ignore[attr-defined]
    await settled(handle)
    (lease,) = handle.store.reserved  # type: ignore[attr-defined]
    return before, pool.reserved(lease)


async def test_a_top_up_racing_a_debt_past_the_slice_admits_no_request_after_it(gated: Shared, pool: Pool) -> None:
    await run_low(gated, pool)
    assert await pool.admit(gated)  # from the slice; its top-up leases 3.75 requests' worth
    await until(lambda: len(gated.store.reserved) == 1)  # type: ignore[attr-defined]
    # Finishing while the top-up is on its way, the request uses what the limit had left, and more.
    pool.finish(gated, pool.past)
    before, reserved = await landed(gated, pool)
    assert reserved == 3.75 * pool.unit  # the store reserved it before the debt reached it
    assert not await pool.admit(gated)  # before: admitted from what the top-up reserved
    # Nothing lost, nothing counted twice: what the slice does not keep of the top-up went back.
    assert await pool.left(gated) + pool.held(gated) == pytest.approx(before + reserved, abs=pool.exact)


async def test_debts_run_up_once_the_slice_is_empty_are_netted_too(gated: Shared, pool: Pool) -> None:
    await run_low(gated, pool)
    assert await pool.admit(gated)  # from the slice; its top-up leases 3.75 requests' worth
    assert await pool.admit(gated)  # from the slice too, while the top-up is on its way
    await until(lambda: len(gated.store.reserved) == 1)  # type: ignore[attr-defined]
    pool.finish(gated, pool.unit)  # past the quarter the slice held: it is empty
    pool.finish(gated, pool.past - pool.unit)  # all of this one is a debt, past an empty slice
    before, reserved = await landed(gated, pool)
    assert reserved == 3.75 * pool.unit
    assert not await pool.admit(gated)  # before: only the first debt was netted, the rest admitted
    assert await pool.left(gated) + pool.held(gated) == pytest.approx(before + reserved, abs=pool.exact)
