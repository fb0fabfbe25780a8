"""Enforces each provider's limits before a request is sent, so it is not pushed into 429s.

`acquire` either grants a permit at once or says how long until one would be free; the
pipeline then tries the next candidate, or waits (in a bounded queue) when none is free.
Every attempt holds a permit, limited or not, so in-flight counts feed `least_busy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..state import Clock, InMemoryState, Signal, State, monotonic
from .bucket import BucketState, TokenBucket
from .settings import LimitsConfig, ProviderLimits

IN_FLIGHT = "inflight."
QUEUE = "limits.queued"


@dataclass(slots=True)
class Permit:
    """One attempt's share of a provider's limits; give it back with `Limiter.release`."""

    provider: str
    tokens: int = 0
    released: bool = False


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
        self, config: LimitsConfig | None = None, state: State | None = None, clock: Clock = monotonic
    ) -> None:
        self.state: State = state if state is not None else InMemoryState()
        self.clock = clock
        self.changed = Signal()
        self.configure(config or LimitsConfig())

    def configure(self, config: LimitsConfig) -> None:
        self.config = config
        self._buckets = {name: _Buckets(limits) for name, limits in config.providers.items()}

    def limits(self, name: str) -> ProviderLimits | None:
        buckets = self._buckets.get(name)
        return buckets.limits if buckets else None

    def in_flight(self, name: str) -> int:
        return self.state.add(IN_FLIGHT + name, 0)  # adding nothing is an atomic read

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

    def _check(self, name: str, buckets: _Buckets, tokens: int) -> float:
        cap = buckets.limits.max_concurrency
        if cap is not None and self.in_flight(name) >= cap:
            return math.inf
        now = self.clock()
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
        if buckets.tpm and used_tokens is not None:
            now = self.clock()
            level = self._level(permit.provider, "tpm", buckets.tpm, now)
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
