"""`Shared`: a worker's or instance's handle on the shared store, with its fault behaviour.

Every call either answers within `timeout_s` or raises `SharedDown`, and the caller falls
back to its own per-instance view (limits divided by the live instance count). The first
failure logs one warning and counts an outage; while down, calls fail at once instead of
waiting, and a background loop pings until the store answers again, then logs its return.
The same loop sends this instance's heartbeat and renews the concurrency leases it holds,
so a killed instance's leases run out within `LEASE_TTL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import msgspec

from .quota import Quotas
from .store import Ask, Budget, BudgetCheck, Giveback, Grant, SharedStore

log = logging.getLogger("llmmux.shared")

T = TypeVar("T")
HEARTBEAT_S = 1.0
INSTANCE_TTL_S = 5.0  # an instance missing this long is dropped from the registry
LEASE_TTL_S = 5.0  # a concurrency lease not renewed this long is freed

Listener = Callable[[str, bytes], None]
"""Called with (sending instance, payload) for a message on a subscribed channel."""


class SharedDown(Exception):
    """The shared store did not answer; use the local view."""


def new_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def message(sender: str, payload: bytes) -> bytes:
    """A channel message as every instance's listeners read it."""
    return msgspec.msgpack.encode([sender, payload])


class Shared:
    """The shared store plus liveness, heartbeat, lease renewal and channels.

    >>> from llmmux.shared.holder import HolderStore          # doctest: +SKIP
    >>> shared = Shared(HolderStore("/run/llmmux/state.sock"))
    >>> await shared.start()
    >>> grant = await shared.acquire("provider.openai", Ask(rpm=60))
    """

    def __init__(
        self,
        store: SharedStore,
        *,
        instance: str | None = None,
        on_failure: str = "open",
        timeout_s: float = 0.5,
        expected_instances: int = 1,
        kind: str = "holder",
    ) -> None:
        self.store = store
        self.instance = instance or new_instance_id()
        self.refuses = on_failure == "closed"
        self.timeout_s = timeout_s
        self.kind = kind
        self.up = False
        self.outages = 0
        self.live_instances = max(1, expected_instances)
        self.describe: Callable[[], dict[str, Any]] = dict
        self._listeners: dict[str, list[Listener]] = {}
        self._leases: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._instances: list[dict[str, Any]] = []
        self.elsewhere: dict[str, int] = {}  # requests in flight by provider on the other instances
        self.lease_ttl_s = LEASE_TTL_S
        self.quotas = Quotas(self)
        store.subscribe(self._dispatch)

    # -- lifecycle --

    async def start(self) -> None:
        if self._loop_task is not None:
            return  # started already (by the router, or by whoever built it)
        try:
            await asyncio.wait_for(self.store.start(), self.timeout_s * 4)
            await asyncio.wait_for(self.store.ping(), self.timeout_s * 4)
            self.up = True
        except Exception as exc:
            self._went_down(exc)
        if self.up:
            await self._beat()
        self._loop_task = asyncio.create_task(self._run(), name="llmmux-shared")

    async def aclose(self) -> None:
        if self._loop_task is None:
            return
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout_s)
        with contextlib.suppress(Exception):
            await self.store.aclose()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if not self.up:
                try:
                    await asyncio.wait_for(self.store.ping(), self.timeout_s)
                except Exception:
                    continue
                self.up = True
                log.warning("shared state (%s) is back: limits, health and keys are shared again", self.kind)
            self.quotas.sweep()
            with contextlib.suppress(SharedDown):
                await self._beat()

    async def _beat(self) -> None:
        info = {**self.describe(), "id": self.instance, "seen": time.time()}
        await self.call(self.store.heartbeat(self.instance, msgspec.json.encode(info), INSTANCE_TTL_S))
        for name, leases in list(self._leases.items()):
            if leases:
                await self.call(self.store.renew(name, list(leases), LEASE_TTL_S))
        found = await self.call(self.store.instances())
        self._instances = [msgspec.json.decode(blob) for blob in found]
        self.live_instances = max(1, len(self._instances))
        elsewhere: dict[str, int] = {}
        for other in self._instances:
            if other.get("id") != self.instance:
                for provider, count in (other.get("providers") or {}).items():
                    elsewhere[provider] = elsewhere.get(provider, 0) + int(count)
        self.elsewhere = elsewhere

    def _went_down(self, error: BaseException) -> None:
        if self.up or self.outages == 0:
            self.outages += 1
            log.warning(
                "shared state (%s) is out of reach (%s); serving with per-instance limits (1/%d of each) until it returns",
                self.kind,
                type(error).__name__ if not str(error) else str(error)[:200],
                self.live_instances,
            )
        self.up = False
        self.quotas.drop()

    # -- calls --

    async def call(self, operation: Awaitable[T]) -> T:
        """Await one store operation; SharedDown when the store is down or does not answer in time."""
        if not self.up:
            if isinstance(operation, Coroutine):
                operation.close()
            raise SharedDown()
        try:
            return await asyncio.wait_for(operation, self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._went_down(exc)
            raise SharedDown() from exc

    def spawn(self, operation: Coroutine[Any, Any, Any]) -> asyncio.Task[None] | None:
        """Run an operation nobody needs to wait for (a release, a charge); a failure only marks the store down."""
        if not self.up:
            operation.close()
            return None
        task = asyncio.ensure_future(self._quietly(operation))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _quietly(self, operation: Coroutine[Any, Any, Any]) -> None:
        with contextlib.suppress(SharedDown):
            await self.call(operation)

    async def acquire(self, name: str, ask: Ask) -> Grant:
        grant = await self.call(self.store.acquire(name, ask))
        if ask.lease is not None and ask.cap is not None and not grant.wait:
            self._leases.setdefault(name, set()).add(ask.lease)
        return grant

    async def acquire_all(self, asks: list[tuple[str, Ask]]) -> list[Grant]:
        """`acquire` for several names in one round trip (a key, its team, an end user)."""
        grants = await self.call(self.store.acquire_all(asks))
        for (name, ask), grant in zip(asks, grants, strict=True):
            if ask.lease is not None and ask.cap is not None and not grant.wait:
                self._leases.setdefault(name, set()).add(ask.lease)
        return grants

    async def charge_budgets(self, budgets: list[Budget], cost: float = 0.0) -> BudgetCheck:
        """The store's `charge_budgets` (check with cost 0.0, charge a finished request's cost);
        SharedDown when it is out of reach, and the caller enforces its own view instead."""
        return await self.call(self.store.charge_budgets(budgets, cost))

    def release(
        self,
        name: str,
        lease: str | None = None,
        *,
        tpm: int | None = None,
        tokens: int = 0,
        spend_key: str | None = None,
        cost: float = 0.0,
    ) -> None:
        if lease is not None:
            self._leases.get(name, set()).discard(lease)
        self.spawn(self.store.release(name, lease, tpm, tokens, spend_key, cost))

    def give_back(
        self,
        name: str,
        lease: str | None,
        tpm: int | None,
        tokens: int,
        spend_key: str | None,
        cost: float,
        back: Giveback,
    ) -> None:
        """`release` for a lease held by this instance (`quota.py`): slots and tokens it no longer needs."""
        self.spawn(self.store.release(name, lease, tpm, tokens, spend_key, cost, back))

    def forget_lease(self, name: str, lease: str) -> None:
        """Stop renewing a lease that holds nothing any more."""
        self._leases.get(name, set()).discard(lease)

    def instances(self) -> list[dict[str, Any]]:
        """Every live instance as of the last heartbeat (this one included)."""
        return list(self._instances)

    async def refresh_instances(self) -> list[dict[str, Any]]:
        with contextlib.suppress(SharedDown):
            await self._beat()
        return self.instances()

    # -- channels --

    def listen(self, channel: str, listener: Listener) -> None:
        self._listeners.setdefault(channel, []).append(listener)

    def publish(self, channel: str, payload: bytes) -> asyncio.Task[None] | None:
        """Send to every instance's listeners on `channel`; the task may be awaited, or not."""
        return self.spawn(self.store.publish(channel, message(self.instance, payload)))

    def _dispatch(self, channel: str, message: bytes) -> None:
        listeners = self._listeners.get(channel)
        if not listeners:
            return
        try:
            sender, payload = msgspec.msgpack.decode(message)
        except (msgspec.DecodeError, ValueError):
            return
        for listener in listeners:
            try:
                listener(sender, payload)
            except Exception:
                log.exception("a listener on the shared channel %s failed", channel)
