"""Enforces each provider's limits before a request is sent, so it is not pushed into 429s.

`acquire` either grants a permit at once or says how long until one would be free; the
pipeline then tries the next candidate, or waits (in a bounded queue) when none is free.
Every attempt holds a permit, limited or not, so in-flight counts feed `least_busy`.

With a shared store (`--workers N`, or `state.url`), `admit` checks the provider's limits
there, in one round trip, so they hold for the whole gateway; while the store is out of
reach it falls back to this process's buckets with each limit divided by the live
instance count (or refuses, with `state.on_failure: closed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config.provider_limits import LimitsConfig, ProviderLimits
from ..errors import SharedStateUnavailable
from ..shared.client import Shared, SharedDown
from ..shared.quota import Want
from ..state import Clock, InMemoryState, Signal, State, monotonic
from .bucket import BucketState, TokenBucket

IN_FLIGHT = "inflight."
QUEUE = "limits.queued"
SHARED_NAME = "provider."
SHARED_POLL_S = 0.05  # how often a request waiting on a shared limit asks again
FALLBACK = "fallback:"  # this process's own buckets while the shared store is down


@dataclass(slots=True)
class Permit:
    """One attempt's share of a provider's limits; give it back with `Limiter.release`."""

    provider: str
    tokens: int = 0
    released: bool = False
    shared: bool = False  # granted by this instance's slice of the shared limits: released there
    epoch: int = 0  # the slices' epoch it was granted in (`Quotas.drop` starts a new one)
    local_key: str | None = None  # granted by the fallback buckets under this name


class _Buckets:
    __slots__ = ("limits", "rpm", "tpm")

    def __init__(self, limits: ProviderLimits) -> None:
        self.limits = limits
        self.rpm = TokenBucket(limits.rpm, limits.rpm / 60) if limits.rpm else None
        self.tpm = TokenBucket(limits.tpm, limits.tpm / 60) if limits.tpm else None


class Limiter:
    """Client-side rpm, tpm and concurrency limits per provider.

    >>> from llmmux.limits import LimitsConfig, ProviderLimits
    >>> limiter = Limiter(LimitsConfig({"vllm": ProviderLimits(max_concurrency=1)}))
    >>> permit = limiter.acquire("vllm", 10); limiter.acquire("vllm", 10)
    inf
    >>> limiter.release(permit)
    """

    def __init__(
        self,
        config: LimitsConfig | None = None,
        state: State | None = None,
        clock: Clock = monotonic,
        shared: Shared | None = None,
    ) -> None:
        self.state: State = state if state is not None else InMemoryState()
        self.clock = clock
        self.changed = Signal()
        self.shared = shared
        self._fallback: dict[str, _Buckets] = {}
        self._fallback_share = 0
        self.configure(config or LimitsConfig())

    def configure(self, config: LimitsConfig) -> None:
        self.config = config
        self._buckets = {name: _Buckets(limits) for name, limits in config.providers.items()}
        self._fallback_share = 0  # rebuilt on next use

    def limits(self, name: str) -> ProviderLimits | None:
        buckets = self._buckets.get(name)
        return buckets.limits if buckets else None

    def in_flight(self, name: str) -> int:
        return self.state.add(IN_FLIGHT + name, 0)  # adding nothing is an atomic read

    def busy(self, name: str) -> int:
        """Requests in flight to a provider from every worker and instance (others' as of their last heartbeat)."""
        local = self.in_flight(name)
        if self.shared is None:
            return local
        return local + self.shared.elsewhere.get(name, 0)

    def in_flight_by_provider(self) -> dict[str, int]:
        """This process's requests in flight, by provider (sent with its heartbeat)."""
        return {k.removeprefix(IN_FLIGHT): v for k, v in self.state.counters(IN_FLIGHT).items() if v}

    def acquire(self, name: str, tokens: int = 0) -> Permit | float:
        """A permit, or the seconds until one may be free (`inf`: when a slot is released)."""
        buckets = self._buckets.get(name)
        if buckets is None:
            self.state.add(IN_FLIGHT + name)
            return Permit(name)
        wait = self._check(name, buckets, tokens)
        if wait:
            return wait
        self.state.add(IN_FLIGHT + name)
        return Permit(name, tokens)

    async def admit(self, name: str, tokens: int = 0) -> Permit | float:
        """`acquire`, against the shared limits when there are (this instance's slice of them,
        topped up from the store in one round trip when it runs out)."""
        shared = self.shared
        buckets = self._buckets.get(name)
        if shared is None or buckets is None:
            return self.acquire(name, tokens)
        limits = buckets.limits
        epoch = shared.quotas.epoch
        try:
            grant = await shared.quotas.admit(
                SHARED_NAME + name,
                rpm=limits.rpm,
                cap=limits.max_concurrency,
                tpm=limits.tpm,
                tokens=tokens if limits.tpm else 0,
            )
        except SharedDown:
            if shared.refuses:
                raise SharedStateUnavailable(
                    "The gateway's shared state is unavailable and state.on_failure is closed; try again shortly."
                ) from None
            return self._acquire_fallback(name, tokens, shared.live_instances)
        if grant.wait:
            # A slot freed by another process wakes no waiter here: look again soon.
            return SHARED_POLL_S if math.isinf(grant.wait) else grant.wait
        self.state.add(IN_FLIGHT + name)
        return Permit(name, tokens, shared=True, epoch=epoch)

    def ahead(self, name: str, tokens: int) -> Want | None:
        """What a request will need of provider `name`'s shared limits (`tokens`: its prompt
        estimate), to ask for in the round trip its key makes anyway (`keys.admit_together`):
        granted, it waits in this instance's slice, so the attempt needs no round trip of its own."""
        buckets = self._buckets.get(name)
        if self.shared is None or buckets is None:
            return None
        limits = buckets.limits
        return Want(SHARED_NAME + name, limits.rpm, limits.max_concurrency, limits.tpm, tokens if limits.tpm else 0)

    def _acquire_fallback(self, name: str, tokens: int, instances: int) -> Permit | float:
        """This process's share of the provider's limits, while the shared store is out of reach."""
        if self._fallback_share != instances:
            self._fallback = {n: _Buckets(_share(b.limits, instances)) for n, b in self._buckets.items()}
            self._fallback_share = instances
        key = FALLBACK + name
        wait = self._check(name, self._fallback[name], tokens, key)
        if wait:
            return wait
        self.state.add(IN_FLIGHT + name)
        return Permit(name, tokens, local_key=key)

    def _check(self, name: str, buckets: _Buckets, tokens: int, key: str | None = None) -> float:
        cap = buckets.limits.max_concurrency
        if cap is not None and self.in_flight(name) >= cap:
            return math.inf
        now = self.clock()
        name = key or name
        rpm_state = self._level(name, "rpm", buckets.rpm, now)
        wait = buckets.rpm.take(rpm_state, 1, now) if buckets.rpm and rpm_state else 0.0
        if wait:
            return wait
        tpm_state = self._level(name, "tpm", buckets.tpm, now)
        if buckets.tpm and tpm_state:
            wait = buckets.tpm.take(tpm_state, tokens, now)
            if wait and buckets.rpm and rpm_state:
                buckets.rpm.settle(rpm_state, -1, now)  # give the request slot back
        return wait

    def _level(self, name: str, kind: str, bucket: TokenBucket | None, now: float) -> BucketState | None:
        if bucket is None:
            return None
        key = f"{kind}.{name}"
        level = self.state.get(BucketState, key)
        if level is None:
            level = bucket.full(now)
        self.state.put(key, level)
        return level

    def release(self, permit: Permit, used_tokens: int | None = None) -> None:
        """Give a permit back; `used_tokens` settles the tpm estimate with the real usage."""
        if permit.released:
            return
        permit.released = True
        self.state.add(IN_FLIGHT + permit.provider, -1)
        buckets = self._buckets.get(permit.provider)
        if buckets is None:
            return
        if permit.shared and self.shared is not None:
            settle = used_tokens - permit.tokens if buckets.tpm and used_tokens is not None else 0
            limits = buckets.limits
            self.shared.quotas.release(
                SHARED_NAME + permit.provider,
                cap=limits.max_concurrency,
                tpm=limits.tpm,
                tokens=settle,
                estimate=permit.tokens,
                epoch=permit.epoch,
            )
            self.changed.notify()
            return
        if permit.local_key is not None:
            buckets = self._fallback.get(permit.provider, buckets)
        if buckets.tpm and used_tokens is not None:
            now = self.clock()
            level = self._level(permit.local_key or permit.provider, "tpm", buckets.tpm, now)
            if level is not None:
                buckets.tpm.settle(level, used_tokens - permit.tokens, now)
        self.changed.notify()

    def headroom(self, name: str) -> float:
        """The smallest fraction left of any of the provider's limits (1.0 when unlimited)."""
        buckets = self._buckets.get(name)
        if buckets is None:
            return 1.0
        now = self.clock()
        fractions = [1.0]
        for kind, bucket in (("rpm", buckets.rpm), ("tpm", buckets.tpm)):
            if bucket is not None:
                fractions.append(bucket.headroom(self.state.get(BucketState, f"{kind}.{name}"), now))
        cap = buckets.limits.max_concurrency
        if cap:
            fractions.append(max(0.0, 1 - self.in_flight(name) / cap))
        return min(fractions)

    # -- the bounded queue of requests waiting for a limit --

    def enqueue(self) -> bool:
        """Take a place in the queue; False when it is full."""
        if self.state.add(QUEUE) > self.config.queue_size:
            self.state.add(QUEUE, -1)
            return False
        return True

    def dequeue(self) -> None:
        self.state.add(QUEUE, -1)


def _share(limits: ProviderLimits, instances: int) -> ProviderLimits:
    """One instance's part of a limit while instances cannot coordinate (at least 1 of each)."""

    def part(value: int | None) -> int | None:
        return None if value is None else max(1, value // instances)

    return ProviderLimits(part(limits.rpm), part(limits.tpm), part(limits.max_concurrency))
