"""ModelPool: loading once, eviction, queueing by model, keep-alive, failures; no sleeping.

A fake loader stands in for the engine so each test decides when loads finish; the
tests with real GGUF files are in test_loader.py and tests/providers/test_llama_cpp.py.
"""

from __future__ import annotations

import asyncio

import pytest

from llmmux.config.units import FOREVER
from llmmux.errors import LLMMuxError, ModelNotFound, UpstreamRateLimited, UpstreamServerError
from llmmux.local.errors import load_failed
from llmmux.local.pool import ModelLease, ModelPool
from llmmux.local.pool_policy import Limits
from local.fixtures import FakeClock

MB = 1024 * 1024


class FakeLoader:
    """Models that load when a test says so, and fail when it says so."""

    def __init__(self, names: str = "a b c", keep_alive: float = 300.0) -> None:
        self._names = names.split()
        self.default_keep_alive = keep_alive
        self.loads: list[str] = []
        self.unloads: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failures: dict[str, str] = {}
        self.broken_files: set[str] = set()

    def names(self) -> list[str]:
        return self._names

    def keep_alive(self, name: str) -> float:
        return self.default_keep_alive

    async def memory(self, name: str) -> int:
        if name in self.broken_files:
            raise load_failed("local", name, f"{name}.gguf is truncated or corrupt")
        return MB

    async def load(self, name: str) -> str:
        self.loads.append(name)
        gate = self.gates.get(name)
        if gate is not None:
            await gate.wait()
        if name in self.failures:
            raise load_failed("local", name, self.failures[name])
        return f"model:{name}"

    async def unload(self, name: str, model: str) -> None:
        self.unloads.append(name)


def make_pool(loader: FakeLoader, clock: FakeClock, max_loaded: int = 2, **kwargs: object) -> ModelPool[str]:
    return ModelPool(
        loader, Limits(max_loaded_models=max_loaded), provider="local", clock=clock, reaper=False, **kwargs
    )  # type: ignore[arg-type]


async def settle() -> None:
    """Let every ready task run until nothing moves (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


def states(pool: ModelPool[str]) -> dict[str, tuple[str, int]]:
    return {s.name: (s.state, s.in_flight) for s in pool.status() if s.state != "unloaded"}


async def test_concurrent_first_requests_load_the_model_once(clock: FakeClock) -> None:
    loader = FakeLoader()
    loader.gates["a"] = asyncio.Event()
    pool = make_pool(loader, clock)
    tasks = [asyncio.ensure_future(pool.acquire("a")) for _ in range(5)]
    await settle()
    assert loader.loads == ["a"] and not any(t.done() for t in tasks)
    assert states(pool) == {"a": ("loading", 5)}  # each already holds its place
    loader.gates["a"].set()
    leases = await asyncio.gather(*tasks)
    assert {lease.model for lease in leases} == {"model:a"}
    assert states(pool) == {"a": ("ready", 5)}
    for lease in leases:
        lease.release()
    assert states(pool) == {"a": ("ready", 0)}
    await pool.aclose()


async def test_a_failed_load_fails_every_waiter_and_the_next_request_tries_again(clock: FakeClock) -> None:
    loader = FakeLoader()
    loader.gates["a"] = asyncio.Event()
    loader.failures["a"] = "out of memory"
    pool = make_pool(loader, clock)
    tasks = [asyncio.ensure_future(pool.acquire("a")) for _ in range(3)]
    await settle()
    loader.gates["a"].set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, UpstreamServerError) for r in results)
    assert all("could not be loaded: out of memory" in r.message for r in results)  # type: ignore[union-attr]
    assert states(pool) == {}
    assert next(s for s in pool.status() if s.name == "a").last_error is not None
    del loader.failures["a"]
    (await pool.acquire("a")).release()
    assert loader.loads == ["a", "a"] and states(pool) == {"a": ("ready", 0)}
    await pool.aclose()


async def test_a_model_that_cannot_be_described_fails_before_touching_the_pool(clock: FakeClock) -> None:
    loader = FakeLoader()
    loader.broken_files.add("a")
    pool = make_pool(loader, clock)
    with pytest.raises(UpstreamServerError, match="truncated or corrupt"):
        await pool.acquire("a")
    assert loader.loads == [] and next(s for s in pool.status() if s.name == "a").last_error
    with pytest.raises(ModelNotFound):
        await pool.acquire("nope")
    await pool.aclose()


async def test_the_least_recently_used_idle_model_makes_room(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock, max_loaded=2)
    for name in ("a", "b"):
        (await pool.acquire(name)).release()
        clock.advance(1)
    (await pool.acquire("a")).release()  # a is fresh again
    clock.advance(1)
    (await pool.acquire("c")).release()
    assert loader.unloads == ["b"]
    assert set(states(pool)) == {"a", "c"}
    await pool.aclose()


async def test_requests_wait_in_a_queue_grouped_by_model_instead_of_thrashing(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock, max_loaded=1)
    a1 = await pool.acquire("a")
    b1 = asyncio.ensure_future(pool.acquire("b"))
    await settle()
    a2 = asyncio.ensure_future(pool.acquire("a"))  # a is being drained for b: a2 queues behind b
    b2 = asyncio.ensure_future(pool.acquire("b"))
    await settle()
    assert not (b1.done() or a2.done() or b2.done())
    assert states(pool) == {"a": ("draining", 1)}
    assert {s.name: s.queued for s in pool.status()} == {"a": 1, "b": 2, "c": 0}
    a1.release()  # a's last request ends: a goes, b loads once for both of its requests
    await settle()
    assert b1.done() and b2.done() and not a2.done()
    assert loader.loads == ["a", "b"] and loader.unloads == ["a"]
    b1.result().release()
    await settle()
    assert not a2.done()  # b still has b2 in flight
    b2.result().release()
    await settle()
    assert a2.done() and loader.loads == ["a", "b", "a"]
    a2.result().release()
    await pool.aclose()


async def test_a_full_queue_answers_503_with_retry_after(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock, max_loaded=1, max_queue=1)
    a = await pool.acquire("a")
    queued = asyncio.ensure_future(pool.acquire("b"))
    await settle()
    with pytest.raises(UpstreamRateLimited) as caught:
        await pool.acquire("c")
    assert caught.value.upstream_status == 503 and caught.value.retry_after
    assert "already queued" in caught.value.message
    a.release()
    (await queued).release()
    await pool.aclose()


async def test_waiting_longer_than_queue_timeout_is_a_503(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock, max_loaded=1, queue_timeout=0.0)
    a = await pool.acquire("a")
    with pytest.raises(UpstreamRateLimited, match="could not be loaded within"):
        await pool.acquire("b")
    assert states(pool) == {"a": ("ready", 1)}  # the drain was lifted with the waiter gone
    a.release()
    await pool.aclose()


async def test_a_cancelled_waiter_leaves_nothing_behind(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock, max_loaded=1)
    a = await pool.acquire("a")
    waiter = asyncio.ensure_future(pool.acquire("b"))
    await settle()
    waiter.cancel()
    await settle()
    a.release()
    await settle()
    assert loader.loads == ["a"] and states(pool) == {"a": ("ready", 0)}
    await pool.aclose()


async def test_keep_alive_unloads_idle_models_when_it_runs_out(clock: FakeClock) -> None:
    loader = FakeLoader(keep_alive=60)
    pool = make_pool(loader, clock)
    (await pool.acquire("a")).release()
    (await pool.acquire("b", keep_alive=FOREVER)).release()
    clock.advance(59)
    assert await pool.reap() == []
    clock.advance(1)
    assert await pool.reap() == ["a"]
    clock.advance(10**6)
    assert await pool.reap() == [] and set(states(pool)) == {"b"}
    await pool.aclose()


async def test_keep_alive_zero_unloads_as_soon_as_the_request_ends(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock)
    lease = await pool.acquire("a", keep_alive=0)
    assert states(pool) == {"a": ("ready", 1)}
    lease.release()
    await settle()
    assert loader.unloads == ["a"] and states(pool) == {}
    await pool.aclose()


async def test_a_lease_keeps_its_model_until_held_work_finishes(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock)
    lease: ModelLease[str] = await pool.acquire("a", keep_alive=0)
    thread_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    lease.hold(thread_done)  # an engine thread still generating after its request was cancelled
    lease.release()
    lease.release()  # idempotent
    await settle()
    assert states(pool) == {"a": ("ready", 1)}
    thread_done.set_result(None)
    await settle()
    assert loader.unloads == ["a"]
    await pool.aclose()


async def test_unload_waits_for_requests_in_flight_and_turns_new_ones_away_meanwhile(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock)
    lease = await pool.acquire("a")
    unloading = asyncio.ensure_future(pool.unload("a"))
    await settle()
    assert not unloading.done() and states(pool) == {"a": ("draining", 1)}
    late = asyncio.ensure_future(pool.acquire("a"))
    await settle()
    assert not late.done()
    lease.release()
    assert await unloading is True
    (await late).release()  # loaded again for the request that came during the unload
    assert loader.loads == ["a", "a"] and loader.unloads == ["a"]
    assert await pool.unload("b") is False
    await pool.aclose()


async def test_explicit_load_preloads_with_the_given_keep_alive(clock: FakeClock) -> None:
    loader = FakeLoader(keep_alive=60)
    pool = make_pool(loader, clock)
    await pool.load("a", keep_alive=FOREVER)
    clock.advance(10**6)
    assert await pool.reap() == [] and states(pool) == {"a": ("ready", 0)}
    await pool.aclose()


async def test_closing_unloads_everything_and_fails_the_queue(clock: FakeClock) -> None:
    loader = FakeLoader()
    pool = make_pool(loader, clock, max_loaded=1)
    lease = await pool.acquire("a")
    queued = asyncio.ensure_future(pool.acquire("b"))
    await settle()
    await pool.aclose()
    with pytest.raises(LLMMuxError, match="shutting down"):
        await queued
    assert loader.unloads == ["a"]
    lease.release()  # a request finishing after shutdown is harmless
    with pytest.raises(LLMMuxError, match="shutting down"):
        await pool.acquire("a")
