"""`Shared`: fault behaviour, heartbeats and what the limiter does with them, on a real holder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator

import pytest

from llmmux.config.health_checks import HealthConfig, HealthSettings
from llmmux.errors import SharedStateUnavailable
from llmmux.health.monitor import HealthMonitor
from llmmux.limits import LimitsConfig, Permit, ProviderLimits
from llmmux.limits.limiter import Limiter
from llmmux.shared import Shared, SharedDown
from llmmux.shared.holder import Holder, HolderStore
from llmmux.shared.store import Ask


class HolderProcess:
    """A holder served on this loop; `stop()` and `start()` take it away and bring it back."""

    def __init__(self) -> None:
        self.path = os.path.join(tempfile.mkdtemp(prefix="llmmux-holder-"), "state.sock")
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self.task = asyncio.ensure_future(Holder().serve(self.path))
        while not os.path.exists(self.path):
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        os.unlink(self.path)


@pytest.fixture
async def holder() -> AsyncIterator[HolderProcess]:
    made = HolderProcess()
    await made.start()
    yield made
    if made.task is not None and not made.task.done():
        await made.stop()


async def shared(holder: HolderProcess, name: str, **options: object) -> Shared:
    handle = Shared(HolderStore(holder.path), instance=name, **options)  # type: ignore[arg-type]
    await handle.start()
    return handle


async def test_the_heartbeat_tells_every_instance_what_the_others_have_in_flight(holder: HolderProcess) -> None:
    a, b = await shared(holder, "a"), await shared(holder, "b")
    a.describe = lambda: {"providers": {"vllm": 3}}
    await a.refresh_instances()
    await b.refresh_instances()
    assert b.elsewhere == {"vllm": 3} and a.elsewhere == {}
    assert b.live_instances == 2
    limiter = Limiter(LimitsConfig(), shared=b)
    permit = limiter.acquire("vllm")
    assert limiter.busy("vllm") == 4  # one here, three elsewhere
    limiter.release(permit)  # type: ignore[arg-type]
    await a.aclose()
    await b.aclose()


async def test_an_outage_falls_back_to_a_share_warns_once_and_recovers(
    holder: HolderProcess, caplog: pytest.LogCaptureFixture
) -> None:
    handle = await shared(holder, "a", expected_instances=3)
    handle.live_instances = 3
    limiter = Limiter(LimitsConfig({"p": ProviderLimits(rpm=60)}), shared=handle)
    assert isinstance(await limiter.admit("p"), Permit)
    await holder.stop()
    with caplog.at_level(logging.WARNING, "llmmux.shared"):
        granted = [await limiter.admit("p") for _ in range(30)]
    # Down: this instance's share is 60 / 3 live instances = 20.
    assert sum(isinstance(g, Permit) for g in granted) == 20
    assert handle.up is False and handle.outages == 1
    assert caplog.text.count("out of reach") == 1
    with pytest.raises(SharedDown):
        await handle.acquire("p", Ask(rpm=1))  # fails at once while down, no timeout waited
    await holder.start()
    for _ in range(50):
        if handle.up:
            break
        await asyncio.sleep(0.1)
    assert handle.up
    grant = await limiter.admit("p")
    assert isinstance(grant, Permit) and grant.shared  # the holder restarted empty: a full bucket
    await handle.aclose()


async def test_on_failure_closed_refuses_while_the_store_is_down(holder: HolderProcess) -> None:
    handle = await shared(holder, "a", on_failure="closed")
    limiter = Limiter(LimitsConfig({"p": ProviderLimits(rpm=60)}), shared=handle)
    await holder.stop()
    with pytest.raises(SharedStateUnavailable) as refused:
        await limiter.admit("p")
    assert refused.value.status == 503 and refused.value.headers() == {"retry-after": "1"}
    await handle.aclose()


async def test_a_lease_held_by_a_live_instance_is_renewed(holder: HolderProcess) -> None:
    handle = await shared(holder, "a")
    limiter = Limiter(LimitsConfig({"p": ProviderLimits(max_concurrency=1)}), shared=handle)
    permit = await limiter.admit("p")
    assert isinstance(permit, Permit) and permit.shared
    assert handle._leases == {"provider.p": {"a"}}  # the instance's lease, renewed by its heartbeat
    assert await limiter.admit("p") == 0.05  # full: asks again shortly (a slot elsewhere wakes no one here)
    limiter.release(permit)
    assert handle._leases == {"provider.p": set()}  # it holds nothing now: no more renewals
    await asyncio.sleep(0.05)
    assert isinstance(await limiter.admit("p"), Permit)
    await handle.aclose()


async def test_failures_on_two_instances_at_once_add_up_to_one_threshold(holder: HolderProcess) -> None:
    a, b = await shared(holder, "a"), await shared(holder, "b")
    config = HealthConfig(HealthSettings(failure_threshold=4, min_requests=100))
    first, second = HealthMonitor(config, shared=a), HealthMonitor(config, shared=b)
    # Both fail twice before either hears of the other: records passed around would each say 2.
    for _ in range(2):
        first.failed("up", "boom")
        second.failed("up", "boom")
    await first.published()
    await second.published()
    for _ in range(50):  # the trip, published by whichever counted the fourth failure, reaches both
        if not first.routable("up") and not second.routable("up"):
            break
        await asyncio.sleep(0.02)
    assert not first.routable("up") and not second.routable("up")
    first.succeeded("up", trial=True)  # a trial succeeds later: the shared streak starts again
    await first.published()
    assert await a.store.streak("up", True) == 1
    await a.aclose()
    await b.aclose()
