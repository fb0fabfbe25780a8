"""This instance's slices of shared limits: most requests are admitted without a round trip.

A round trip to the shared store per request is what made shared limits expensive (about
0.4 ms and half the throughput on Redis). Instead, an instance leases a slice of a limit:
rpm tokens taken from the shared bucket, concurrency slots added to its own lease, and
spends them locally. The total stays exact because every token admitted was taken from the
shared bucket once, and every slot in use is counted in the store under this instance's
lease. What is leased and unused goes back at the end of a `LEASE_S` period (all of it after
an idle period); a killed instance's slots run out with its lease (`LEASE_TTL_S`), its unused
tokens only refill with the bucket.

A slice is sized by what the instance used in the last period (doubling while it runs out,
like a TCP window), and is at most 1/`LEASE_DIVISOR` of the limit per live instance, so
tokens parked on an idle instance never starve the others by more than that. Small limits
(rpm 60, max_concurrency 4, on a few instances) lease nothing: each request asks the store,
exactly as before. Limits with tpm or a spend to check always ask the store; the tokens and
slots that ride along with that round trip are still leased.

>>> quotas = Quotas(shared)                                   # doctest: +SKIP
>>> grant = await quotas.admit("provider.openai", rpm=10_000, cap=256)
>>> quotas.release("provider.openai", cap=256)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..state import Clock, monotonic
from .store import Ask, Giveback, Grant

if TYPE_CHECKING:
    from .client import Shared

LEASE_S = 1.0
"""How long leased rpm tokens are kept before what is left goes back to the shared bucket."""

LEASE_DIVISOR = 64
"""A slice is at most limit / (LEASE_DIVISOR × live instances): rpm 6,000 on 3 instances leases ≤ 31."""

REFILL_AT = 0.25
"""A slice is topped up in the background once it is down to this fraction of its size."""


@dataclass(slots=True)
class _Slice:
    rpm: int | None = None  # the limit the tokens were taken from (to give them back)
    requests: int = 0  # rpm tokens held, not yet spent
    slots: int = 0  # concurrency slots held under this instance's lease
    busy: int = 0  # of those, in use
    until: float = 0.0  # when this period ends: unused tokens and idle slots go back
    used: int = 0  # requests admitted this period
    want: int = 1  # how many rpm tokens to lease next
    asking: int = 0  # round trips in flight: only the first of a burst leases extras
    refilling: bool = False


class Quotas:
    """The slices this instance holds, by shared name (`provider.<name>`, `key.<id>`)."""

    def __init__(self, shared: Shared, clock: Clock = monotonic) -> None:
        self.shared = shared
        self.clock = clock
        self._slices: dict[str, _Slice] = {}
        self.epoch = 0  # bumped by `drop`: a release from before it has nothing to give back

    def _share(self, limit: int | None) -> int:
        """The most this instance may lease of `limit`; 0 or 1 means it leases nothing."""
        if not limit:
            return 0
        return limit // (LEASE_DIVISOR * self.shared.live_instances)

    async def admit(
        self,
        name: str,
        *,
        rpm: int | None = None,
        cap: int | None = None,
        tpm: int | None = None,
        tokens: int = 0,
        spend_key: str | None = None,
        spend_seed: float = 0.0,
    ) -> Grant:
        """Admit one request against `name`'s limits: from the slice when it can, else in one
        round trip that also tops the slice up. SharedDown when the store is out of reach."""
        part = self._slices.get(name)
        if part is None:
            part = self._slices[name] = _Slice()
        now = self.clock()
        if now >= part.until:
            self._renew(name, part, now)
        part.rpm = rpm
        token = 1 if rpm and part.requests >= 1 else 0  # taken from the slice
        slot = 1 if cap and part.busy < part.slots else 0
        part.requests -= token
        part.busy += slot
        if (token or not rpm) and (slot or not cap) and tpm is None and spend_key is None:
            part.used += 1
            if rpm and part.requests < part.want * REFILL_AT:
                self._refill(name, part, rpm, cap)
            return Grant()
        ask = Ask(
            rpm, tpm, tokens, cap, self.shared.instance if cap else None, self.shared.lease_ttl_s,
            spend_key, spend_seed,
            rpm_need=1 - token if rpm else 0,
            rpm_more=0 if part.asking else self._more(part, rpm, grow=not token),
            slots_need=1 - slot if cap else 0,
            slots_more=0 if part.asking else self._share(cap),
        )  # fmt: skip
        part.asking += 1
        try:
            grant = await self.shared.acquire(name, ask)
        except BaseException:
            part.requests, part.busy = part.requests + token, part.busy - slot
            raise
        finally:
            part.asking -= 1
        if grant.wait:  # refused: what was taken from the slice goes back to it
            part.requests, part.busy = part.requests + token, part.busy - slot
            return grant
        part.requests += grant.requests - ask.rpm_need
        part.slots += grant.slots
        part.busy += ask.slots_need
        part.used += 1
        return grant

    def _more(self, part: _Slice, rpm: int | None, *, grow: bool) -> int:
        share = self._share(rpm)
        if share <= 1:
            return 0
        if grow:  # the slice ran low within its period: lease more next time
            part.want = min(share, part.want * 2)
        return max(0, min(share, part.want) - max(0, part.requests))

    def _refill(self, name: str, part: _Slice, rpm: int, cap: int | None) -> None:
        """Top the slice up in the background, so the request that would find it empty doesn't wait."""
        if part.refilling or not self.shared.up:
            return
        more = self._more(part, rpm, grow=True)
        if more <= 0:
            return
        lease = self.shared.instance if cap else None
        ask = Ask(rpm, None, 0, cap, lease, self.shared.lease_ttl_s, rpm_need=0, rpm_more=more, slots_need=0)
        part.refilling = True
        if self.shared.spawn(self._refilled(name, part, ask)) is None:
            part.refilling = False

    async def _refilled(self, name: str, part: _Slice, ask: Ask) -> None:
        try:
            grant = await self.shared.acquire(name, ask)
            if self._slices.get(name) is part:  # not dropped meanwhile
                part.requests += grant.requests
                part.slots += grant.slots
        finally:
            part.refilling = False

    def release(
        self,
        name: str,
        *,
        cap: int | None = None,
        tpm: int | None = None,
        tokens: int = 0,
        spend_key: str | None = None,
        cost: float = 0.0,
        epoch: int | None = None,
    ) -> None:
        """A request admitted by `admit` (in `epoch`) is done: free its slot (kept for the next
        one when the slice may hold spares) and settle its tokens and cost, in the background."""
        part = self._slices.get(name) if epoch in (None, self.epoch) else None
        slots = 0
        if cap and part is not None and part.busy > 0:
            part.busy -= 1
            slots = max(0, part.slots - part.busy - self._share(cap))
            part.slots -= slots
        if not (slots or tokens or (spend_key and cost)):
            return  # nothing the store needs to hear about
        self._give_back(name, part, tpm, tokens, spend_key, cost, Giveback(slots=slots))

    def sweep(self) -> None:
        """Give back what slices past their period hold unused (called every heartbeat)."""
        now = self.clock()
        for name, part in list(self._slices.items()):
            if now >= part.until:
                self._renew(name, part, now)

    def _renew(self, name: str, part: _Slice, now: float) -> None:
        """Start the slice's next period, sized by the last one: what it will not need goes back."""
        part.want = max(1, min(part.want, part.used))
        keep = part.want if part.used else 0
        requests = max(0, part.requests - keep)
        spare = part.slots - part.busy if not part.used else 0
        part.used, part.until = 0, now + LEASE_S
        if requests <= 0 and spare <= 0:
            return
        part.requests -= requests
        part.slots -= spare
        self._give_back(name, part, None, 0, None, 0.0, Giveback(slots=spare, rpm=part.rpm, requests=requests))

    def _give_back(
        self,
        name: str,
        part: _Slice | None,
        tpm: int | None,
        tokens: int,
        spend: str | None,
        cost: float,
        back: Giveback,
    ) -> None:
        lease = self.shared.instance if back.slots else None
        self.shared.give_back(name, lease, tpm, tokens, spend, cost, back)
        if back.slots and part is not None and part.slots == 0:
            self.shared.forget_lease(name, self.shared.instance)

    def drop(self) -> None:
        """Forget every slice: the store was out of reach, so what it holds for this instance is
        unknown (a restarted Redis holds nothing); slices start again from the store's word."""
        self._slices.clear()
        self.epoch += 1
