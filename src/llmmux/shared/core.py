"""The shared operations in plain Python: what the holder process runs, and the reference
the Redis scripts follow. Pure: time is passed in, nothing is awaited.

>>> from llmmux.limits.key_buckets import FakeClock
>>> core = StoreCore(FakeClock())
>>> [core.acquire("provider.a", Ask(rpm=2)).wait for _ in range(3)]
[0.0, 0.0, 30.0]
"""

from __future__ import annotations

import math

from ..limits.bucket import BucketState, TokenBucket
from ..state import Clock, monotonic
from .store import Ask, Budget, BudgetCheck, Giveback, Grant

# Refill of a tokens-per-minute or requests-per-minute bucket, per second.
PER_MINUTE = 60.0


class StoreCore:
    """Buckets, concurrency leases, counters, spend, instances and blobs, in dicts."""

    def __init__(self, clock: Clock = monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, BucketState] = {}
        self._leases: dict[str, dict[str, list[float]]] = {}  # name -> lease -> [expiry, slots]
        self._counters: dict[str, int] = {}
        self._spend: dict[str, float] = {}
        self._instances: dict[str, tuple[float, bytes]] = {}
        self._blobs: dict[str, tuple[float, bytes]] = {}

    def ping(self) -> None:
        return None

    def acquire(self, name: str, ask: Ask) -> Grant:
        now = self.clock()
        spend = None
        if ask.spend_key is not None:
            spend = self._spend.setdefault(ask.spend_key, ask.spend_seed)
        free = 0
        if ask.cap is not None:
            free = ask.cap - sum(int(held[1]) for held in self._live_leases(name, now).values())
            if free < ask.slots_need:
                return Grant(math.inf, "concurrency", spend)
        rpm = self._bucket(name, "rpm", ask.rpm, now)
        if rpm is not None and ask.rpm_need and (wait := rpm[0].take(rpm[1], ask.rpm_need, now)):
            return Grant(wait, "rpm", spend)
        tpm = self._bucket(name, "tpm", ask.tpm, now)
        if tpm is not None and ask.tpm_need and (wait := tpm[0].take(tpm[1], ask.tokens, now)):
            if rpm is not None and ask.rpm_need:
                rpm[0].settle(rpm[1], -ask.rpm_need, now)  # give the request slot back
            return Grant(wait, "tpm", spend)
        requests = (ask.rpm_need if rpm is not None else 0) + _lease(rpm, ask.rpm_more, now)
        tokens = _lease(tpm, ask.tpm_more, now)
        slots = 0
        if ask.cap is not None and ask.lease is not None:
            slots = min(ask.slots_need + ask.slots_more, free)
            if slots:
                held = self._leases.setdefault(name, {}).setdefault(ask.lease, [0.0, 0])
                held[0], held[1] = now + ask.ttl_s, held[1] + slots
        money = 0.0
        if ask.spend_key is not None and ask.budget is not None and spend is not None and ask.money_more > 0:
            money = max(0.0, min(ask.money_more, ask.budget - spend))
            self._spend[ask.spend_key] = spend + money
        return Grant(0.0, "", spend, requests, slots, tokens, money)

    def acquire_all(self, asks: list[tuple[str, Ask]]) -> list[Grant]:
        return [self.acquire(name, ask) for name, ask in asks]

    def release(
        self,
        name: str,
        lease: str | None,
        tpm: int | None,
        tokens: int,
        spend_key: str | None,
        cost: float,
        back: Giveback | None = None,
    ) -> None:
        now = self.clock()
        back = back or Giveback()
        if lease is not None and back.slots:
            held = self._leases.get(name, {})
            if lease in held:
                held[lease][1] -= back.slots
                if held[lease][1] <= 0:
                    del held[lease]
        for kind, limit, amount in (("tpm", tpm, tokens), ("rpm", back.rpm, -back.requests)):
            bucket = self._bucket(name, kind, limit, now)
            if bucket is not None and amount:
                bucket[0].settle(bucket[1], amount, now)
        if spend_key is not None and cost and spend_key in self._spend:
            self._spend[spend_key] += cost

    def renew(self, name: str, leases: list[str], ttl_s: float) -> None:
        held = self._leases.get(name, {})
        expiry = self.clock() + ttl_s
        for lease in leases:
            if lease in held:
                held[lease][0] = expiry

    def charge_budgets(self, budgets: list[Budget], cost: float) -> BudgetCheck:
        spends, over = [], -1
        for i, budget in enumerate(budgets):
            spend = self._spend.get(budget.counter, budget.seed) + cost
            self._spend[budget.counter] = spend
            spends.append(spend)
            if over < 0 and budget.limit is not None and spend >= budget.limit:
                over = i
        return BudgetCheck(spends, over)

    def streak(self, counter: str, failed: bool) -> int:
        key = "streak." + counter
        if not failed:
            self._counters.pop(key, None)
            return 0
        return self.incr(key)

    def incr(self, counter: str) -> int:
        value = self._counters[counter] = self._counters.get(counter, 0) + 1
        return value

    def heartbeat(self, instance: str, info: bytes, ttl_s: float) -> None:
        self._instances[instance] = (self.clock() + ttl_s, info)

    def instances(self) -> list[bytes]:
        now = self.clock()
        self._instances = {k: v for k, v in self._instances.items() if v[0] > now}
        return [info for _, info in self._instances.values()]

    def put_blob(self, key: str, value: bytes, ttl_s: float) -> None:
        self._blobs[key] = (self.clock() + ttl_s, value)

    def get_blob(self, key: str) -> bytes | None:
        found = self._blobs.get(key)
        if found is None or found[0] <= self.clock():
            self._blobs.pop(key, None)
            return None
        return found[1]

    def delete_blob(self, key: str) -> bool:
        return self._blobs.pop(key, None) is not None

    def _live_leases(self, name: str, now: float) -> dict[str, list[float]]:
        held = self._leases.setdefault(name, {})
        expired = [lease for lease, (until, _) in held.items() if until <= now]
        for lease in expired:
            del held[lease]
        return held

    def _bucket(
        self, name: str, kind: str, per_minute: int | None, now: float
    ) -> tuple[TokenBucket, BucketState] | None:
        if not per_minute:
            return None
        bucket = TokenBucket(per_minute, per_minute / PER_MINUTE)
        key = f"{kind}.{name}"
        level = self._buckets.get(key)
        if level is None:
            level = self._buckets[key] = bucket.full(now)
        return bucket, level


def _lease(bucket: tuple[TokenBucket, BucketState] | None, more: int, now: float) -> int:
    """Take up to `more` whole tokens from a bucket for a slice, as many as it holds."""
    if bucket is None or more <= 0:
        return 0
    limit, level = bucket
    level.tokens, level.updated = limit.level(level, now), now
    taken = min(more, max(0, math.floor(level.tokens)))
    level.tokens -= taken
    return taken
