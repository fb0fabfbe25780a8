"""Failed console logins counted once for the whole gateway, not once per worker.

`LoginThrottle` counts in one process, so `--workers 4` would allow four times the tries.
With a shared store (the supervisor's state holder, or Redis when `state.url` is set) the
counts live there, under the same rules (`ui.login`):

* an address's failures in a row: an atomic `streak`, so parallel guesses each count, ended
  by a correct key;
* the end of its lockout: a blob that expires with it;
* everyone's failures: a `streak` per wall-clock minute (the lockout for all once one passes
  `global_per_minute`; the minute of two minutes back is ended as a new one starts, so the
  holder, which keeps counters until told, holds at most three), and the end of that lockout
  with how many came in a row, as a blob.

When the store does not answer, this process's own `LoginThrottle` decides, as it would alone.

    throttle = GatewayLoginThrottle(LoginLimits(), shared)
    wait = await throttle.wait("203.0.113.7")
    await throttle.failed("203.0.113.7") or await throttle.succeeded("203.0.113.7")
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from ..config.model import LoginLimits
from ..shared.client import Shared, SharedDown
from .throttle import WINDOW_S, LoginThrottle, doubled

_PREFIX = "console.login."
_EVERYONE = _PREFIX + "everyone"


class GatewayLoginThrottle:
    """`LoginThrottle`'s limits over the shared store; the local throttle while the store is away."""

    def __init__(self, limits: LoginLimits, shared: Shared | None, clock: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self.local = LoginThrottle(limits)
        self._shared = shared
        self._clock = clock
        self.refused = 0

    async def wait(self, client: str) -> float:
        """Seconds before `client` may try again (0.0: now)."""
        if self._shared is None:
            return self._local_wait(client)
        try:
            own = await self._blob(_PREFIX + "until." + client)
            everyone = await self._blob(_EVERYONE)
        except SharedDown:
            return self._local_wait(client)
        wait = max(own[0], everyone[0]) - self._clock()
        if wait > 0:
            self.refused += 1
        return max(wait, 0.0)

    async def failed(self, client: str) -> float:
        """Count a wrong key from `client`; the lockout it now has (0.0: none yet)."""
        if self._shared is None:
            return self.local.failed(client)
        try:
            own = await self._count_client(client)
            everyone = await self._count_everyone()
        except SharedDown:
            return self.local.failed(client)
        return max(own, everyone, 0.0)

    async def succeeded(self, client: str) -> None:
        self.local.succeeded(client)
        if self._shared is not None:
            try:
                await self._shared.call(self._shared.store.streak(_PREFIX + "failures." + client, False))
            except SharedDown:
                pass

    def _local_wait(self, client: str) -> float:
        wait = self.local.wait(client)
        self.refused = self.local.refused
        return wait

    async def _count_client(self, client: str) -> float:
        assert self._shared is not None
        store, limits = self._shared.store, self.limits
        failures = await self._shared.call(store.streak(_PREFIX + "failures." + client, True))
        beyond = failures - limits.free_tries
        if beyond <= 0:
            return 0.0
        lockout = doubled(limits.backoff_s, beyond, limits.max_backoff_s)
        await self._put(_PREFIX + "until." + client, self._clock() + lockout, 0, lockout)
        return lockout

    async def _count_everyone(self) -> float:
        assert self._shared is not None
        store, limits, now = self._shared.store, self.limits, self._clock()
        minute = int(now // WINDOW_S)
        recent = await self._shared.call(store.streak(f"{_PREFIX}minute.{minute}", True))
        if recent == 1:  # the first failure of a minute: the one of two minutes back is done with
            await self._shared.call(store.streak(f"{_PREFIX}minute.{minute - 2}", False))
        if recent <= limits.global_per_minute:
            return 0.0
        until, lockouts = await self._blob(_EVERYONE)
        lockouts = lockouts + 1 if until > now - WINDOW_S else 1  # a quiet minute since the last: start over
        lockout = doubled(limits.backoff_s, lockouts, limits.max_backoff_s)
        await self._put(_EVERYONE, now + lockout, lockouts, lockout + WINDOW_S)
        await self._shared.call(store.streak(f"{_PREFIX}minute.{minute}", False))
        return lockout

    async def _blob(self, key: str) -> tuple[float, int]:
        """(until, lockouts in a row) stored under `key`; (0.0, 0) when none."""
        assert self._shared is not None
        found = await self._shared.call(self._shared.store.get_blob(key))
        if found is None:
            return 0.0, 0
        until, lockouts = msgspec.msgpack.decode(found, type=tuple[float, int])
        return until, lockouts

    async def _put(self, key: str, until: float, lockouts: int, ttl_s: float) -> None:
        assert self._shared is not None
        value = msgspec.msgpack.encode((until, lockouts))
        await self._shared.call(self._shared.store.put_blob(key, value, max(ttl_s, 1.0)))
