"""This instance's slices of shared limits: most requests are admitted without a round trip.

A round trip to the shared store per request is what made shared limits expensive (about
0.4 ms and half the throughput on Redis). Instead, an instance leases a slice of a limit and
spends it locally: rpm tokens taken from the shared bucket, concurrency slots added to its
own lease, tpm tokens taken from the shared tpm bucket, and money reserved in a budget's
shared spend counter. The total stays exact because every token admitted was taken from the
shared bucket once, every slot in use is counted in the store under this instance's lease,
and every dollar spent was either reserved there or is added there after the request.

Tokens per minute and cost are known only after the reply: a request takes its estimate
from the tpm slice at admission (a key's estimate is 0: it needs the slice above zero) and
the difference settles against the slice afterwards; what the slice cannot cover is settled
with the store at once, so across instances the limit is passed only by requests already in
flight, as without slices. A budget's slice admits while it holds money; each finished
request's cost is spent from it, the part it cannot cover added to the store's counter.
Such a debt may reach the store after a lease of tokens or money that was on its way: the
store reserved that lease from what the debt then took, so the debt is netted against the
lease when it lands and that much goes back, or the slice would admit past the limit by it.

What is leased and unused goes back at the end of a `LEASE_S` period (all of it after an
idle period); a killed instance's slots run out with its lease (`LEASE_TTL_S`), its unused
tokens only refill with the bucket, and money it reserved stays counted as spent (at most
one slice: 1/`LEASE_DIVISOR` of the budget per live instance).

A slice is sized by what the instance used in the last period (doubling while it runs out,
like a TCP window), and is at most 1/`LEASE_DIVISOR` of the limit per live instance, so
tokens parked on an idle instance never starve the others by more than that. Small limits
(rpm 60, max_concurrency 4, a tpm or budget smaller than `SLICE_REQUESTS` requests' worth of
the slice) lease nothing: each request asks the store, exactly as before, but once for all
its names: `admit_many` sends a key's, its team's and its end user's asks in one round trip
(`acquire_all`), with the provider the request will likely reach asked ahead, so its
attempt finds a token and a slot in its slice.

>>> quotas = Quotas(shared)                                   # doctest: +SKIP
>>> grant = await quotas.admit("provider.openai", rpm=10_000, cap=256, tpm=2_000_000, tokens=900)
>>> quotas.release("provider.openai", cap=256, tpm=2_000_000, tokens=-120, estimate=900)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

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

SLICE_REQUESTS = 4
"""A tpm or budget slice is leased only when it may hold this many requests' worth (tokens or cost)."""

SPARES_FILL = 0.75
"""Spare concurrency slots are leased up to this fraction of the slice, given back only past all
of it (down to half): requests in flight swing around a level, and a slot leased for one request
and given back after it would be a round trip each."""

SMOOTHING = 0.2
"""Weight of the newest request in the running mean of tokens and cost a request takes."""


@dataclass(slots=True)
class _Pool:
    """An amount leased from one shared counter: tpm tokens, or money under a budget.

    Requests spend from `held`; what it cannot cover is a debt the caller settles with the
    store, netted against the leases on their way meanwhile (`landed`). `each` (the mean a
    request takes) sizes the slice, so it holds a few requests' worth.
    """

    held: float = 0.0  # leased, not yet spent
    want: float = 0.0  # how much to hold after the next lease
    used: float = 0.0  # spent this period
    each: float = 0.0  # the running mean one request takes
    leases: int = 0  # leases on their way to the store
    owed: float = 0.0  # spent past `held` while one was: a debt the store counts apart from them

    def more(self, cap: float, *, grow: bool) -> float:
        """How much to lease now, at most `cap` held (0 when `cap` is too small to bother)."""
        if self.each <= 0 or cap < SLICE_REQUESTS * self.each:
            return 0.0
        if grow or self.want <= 0:
            self.want = min(cap, max(self.want * 2, 2 * self.each))
        return max(0.0, min(cap, self.want) - max(0.0, self.held))

    def low(self) -> bool:
        return self.want > 0 and self.held < self.want * REFILL_AT

    def spend(self, amount: float) -> float:
        """Spend `amount` (negative: a credit) from what is held; answer what it could not cover."""
        self.used += amount
        self.held -= amount
        if self.held >= 0:
            return 0.0
        debt, self.held = -self.held, 0.0
        if self.leases:
            self.owed += debt
        return debt

    def landed(self, amount: float) -> float:
        """A lease came back with `amount`: answer how much of it the debts run up while it was on
        its way take (not to be held). The store may have reserved `amount` before those debts
        reached it, so holding all of it would admit past the limit by them."""
        self.leases -= 1
        back = min(amount, self.owed)
        self.owed = self.owed - back if self.leases else 0.0
        return back

    def observe(self, amount: float) -> None:
        self.each = amount if self.each <= 0 else self.each + SMOOTHING * (amount - self.each)

    def renew(self) -> float:
        """Start the next period, sized by this one: answer what goes back (all, after an idle one)."""
        self.want = min(self.want, max(0.0, self.used))
        back = max(0.0, self.held - self.want)
        self.held -= back
        self.used = 0.0
        return back


@dataclass(slots=True)
class _Slice:
    rpm: int | None = None  # the limit the tokens were taken from (to give them back)
    requests: int = 0  # rpm tokens held, not yet spent
    slots: int = 0  # concurrency slots held under this instance's lease
    busy: int = 0  # of those, in use
    until: float = 0.0  # when this period ends: unused tokens and idle slots go back
    used: int = 0  # requests admitted this period
    want: int = 1  # how many rpm tokens to lease next
    # Round trips in flight that lease extras: requests meanwhile ask for their own share only.
    # (Counting every round trip instead left a slice under steady concurrency never topped up:
    # one request was always asking, so none leased, and each asked the store for itself.)
    leasing: int = 0
    leased: asyncio.Future[None] | None = (
        None  # done when those round trips are: requests that find the slice empty wait
    )
    refilling: bool = False
    tpm: int | None = None
    tokens: _Pool = field(default_factory=_Pool)  # tpm tokens
    spend_key: str | None = None  # the budget's counter (its period) the money was reserved in
    budget: float | None = None
    seed: float = 0.0  # the spend the ledger knows, for a counter the store lacks
    money: _Pool = field(default_factory=_Pool)


@dataclass(slots=True)
class Want:
    """What one request needs of one name's limits, for `Quotas.admit_many`."""

    name: str
    rpm: int | None = None
    cap: int | None = None
    tpm: int | None = None
    tokens: int = 0  # the tpm estimate
    spend_key: str | None = None
    spend_seed: float = 0.0
    budget: float | None = None
    sliced: bool = True  # False: no slice (end users: too many to keep one each), the store decides
    prefill: bool = False  # asked ahead for a later admission (`admit_many`'s `ahead`): granted, it waits in the slice


class _Took(NamedTuple):
    """What a request took from its slice: an rpm token, a slot; its tpm estimate paid; a budget slice."""

    token: int
    slot: int
    paid: bool
    funded: bool

    def serves(self, want: Want) -> bool:
        return bool(
            (self.token or not want.rpm)
            and (self.slot or not want.cap)
            and (self.paid or not want.tpm)
            and (self.funded or want.spend_key is None)
        )


_NOTHING = _Took(0, 0, False, False)
# What a request served from its slices is answered (shared: nobody changes a grant they are given).
_SERVED = Grant()
_FUNDED = Grant(funded=True)


def _leases(ask: Ask) -> bool:
    return bool(ask.rpm_more or ask.slots_more or ask.tpm_more or ask.money_more)


def _lends(ask: Ask) -> bool:
    """Whether `ask` leases tpm tokens or money: what debts run up meanwhile are netted against."""
    return ask.tpm_more > 0 or ask.money_more > 0


def _sent(tokens: _Pool, money: _Pool, ask: Ask) -> None:
    """Count a lease of `ask`'s on its way to the store, in each pool it leases for."""
    tokens.leases += ask.tpm_more > 0
    money.leases += ask.money_more > 0


def _covers(part: _Slice, want: Want) -> bool:
    """Whether the slice holds all that one request needs (`_take`'s checks, taking nothing)."""
    return (
        (not want.rpm or part.requests >= 1)
        and (not want.cap or part.busy < part.slots)
        and (not want.tpm or part.tokens.held >= max(want.tokens, 1))
        and (want.spend_key is None or (part.money.held > 0 and want.spend_key == part.spend_key))
    )


def _plain(want: Want) -> Ask:
    return Ask(want.rpm, want.tpm, want.tokens, spend_key=want.spend_key, spend_seed=want.spend_seed)


class Quotas:
    """The slices this instance holds, by shared name (`provider.<name>`, `key.<id>`)."""

    def __init__(self, shared: Shared, clock: Clock = monotonic) -> None:
        self.shared = shared
        self.clock = clock
        self._slices: dict[str, _Slice] = {}
        self.epoch = 0  # bumped by `drop`: a release from before it has nothing to give back

    def _share(self, limit: float | None) -> int:
        """The most this instance may lease of `limit`; 0 or 1 means it leases nothing."""
        if not limit:
            return 0
        return int(limit // (LEASE_DIVISOR * self.shared.live_instances))

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
        budget: float | None = None,
    ) -> Grant:
        """Admit one request against `name`'s limits: from the slice when it can, else in one
        round trip that also tops the slice up. SharedDown when the store is out of reach."""
        part = self._slices.get(name)
        if (  # the hot path: the slice holds all of it (the same checks as `_take`, without allocating)
            part is not None
            and (not rpm or part.requests >= 1)
            and (not cap or part.busy < part.slots)
            and (not tpm or part.tokens.held >= max(tokens, 1))
            and (spend_key is None or (part.money.held > 0 and spend_key == part.spend_key))
            and self.clock() < part.until
        ):
            part.rpm, part.tpm, part.budget, part.seed = rpm, tpm, budget, spend_seed
            part.requests -= 1 if rpm else 0
            part.busy += 1 if cap else 0
            if tpm:
                part.tokens.spend(tokens)
            part.used += 1
            if (
                (rpm and part.requests < part.want * REFILL_AT)
                or part.tokens.low()
                or part.money.low()
                or (cap and self._slots_low(part, cap))
            ):
                self._refill(name, part, cap)
            return _FUNDED if spend_key is not None else _SERVED
        return (await self.admit_many([Want(name, rpm, cap, tpm, tokens, spend_key, spend_seed, budget)]))[0]

    async def admit_many(self, wants: list[Want], ahead: Callable[[], list[Want]] | None = None) -> list[Grant]:
        """Admit one request against several names (a key, its team, an end user): each from its
        slice when it can, the rest in one round trip. `ahead` names what a later admission of
        the request will need (the provider it will likely reach): asked for only when that
        round trip happens anyway, and put in the slices (its grants follow `wants`')."""
        for want in wants:  # a top-up on its way serves this request too: wait for it, not ask alongside
            part = self._slices.get(want.name) if want.sliced else None
            if part is not None and part.leased is not None and not _covers(part, want):
                await asyncio.shield(part.leased)
        grants: list[Grant] = []
        asking: list[tuple[int, _Slice | None, _Took, Ask]] = []
        for want in wants:
            grants.append(self._plan(want, len(grants), asking))
        if asking and ahead is not None:
            wants = wants + [replace(want, prefill=True) for want in ahead()]
            for want in wants[len(grants) :]:
                grants.append(self._plan(want, len(grants), asking))
        if asking:
            await self._ask_store(wants, asking, grants)
        return grants

    def _plan(self, want: Want, i: int, asking: list[tuple[int, _Slice | None, _Took, Ask]]) -> Grant:
        """Serve `want` from its slice, or add what it needs to `asking` (the store's round trip)."""
        if not want.sliced:
            asking.append((i, None, _NOTHING, _plain(want)))
            return Grant()
        part = self._part(want)
        took = self._take(part, want)
        if took.serves(want):
            if want.prefill:  # it would be served from the slice: nothing to ask ahead
                self._untake(part, took, want)
                return Grant()
            part.used += 1
            if (
                (want.rpm and part.requests < part.want * REFILL_AT)
                or part.tokens.low()
                or part.money.low()
                or (want.cap and self._slots_low(part, want.cap))
            ):
                self._refill(want.name, part, want.cap)
            return Grant(funded=took.funded)
        asking.append((i, part, took, self._ask(part, want, took)))
        if want.prefill:  # asked ahead: what it gets is put in the slice, not used now
            self._untake(part, took, want)
        return Grant()

    async def _ask_store(
        self, wants: list[Want], asking: list[tuple[int, _Slice | None, _Took, Ask]], grants: list[Grant]
    ) -> None:
        # The money pools the leases are for: a new budget period replaces a slice's meanwhile.
        money = [part.money if part is not None else None for _, part, _, _ in asking]
        for _, part, _, ask in asking:
            if part is not None and _leases(ask):
                part.leasing += 1
                if part.leased is None:
                    part.leased = asyncio.get_running_loop().create_future()
                _sent(part.tokens, part.money, ask)
        try:
            asks = [(wants[i].name, ask) for i, _, _, ask in asking]
            if len(asks) == 1:
                answers = [await self.shared.acquire(*asks[0])]
            else:
                answers = await self.shared.acquire_all(asks)
        except BaseException:
            for i, part, took, _ in asking:
                if part is not None and not wants[i].prefill:
                    self._untake(part, took, wants[i])
            for (i, part, _, ask), pool in zip(asking, money, strict=True):
                if part is not None and pool is not None and _lends(ask):
                    self._landed(wants[i].name, part.tokens, pool, ask, Grant())
            raise
        finally:
            for _, part, _, ask in asking:
                if part is not None and _leases(ask):
                    part.leasing -= 1
                    if not part.leasing and part.leased is not None:
                        part.leased.set_result(None)
                        part.leased = None
        for (i, part, took, ask), grant, pool in zip(asking, answers, money, strict=True):
            if part is not None and pool is not None and _lends(ask):
                self._landed(wants[i].name, part.tokens, pool, ask, grant)
            grants[i] = grant if part is None else self._granted(part, wants[i], took, ask, grant)

    def _granted(self, part: _Slice, want: Want, took: _Took, ask: Ask, grant: Grant) -> Grant:
        if grant.wait:  # refused: what was taken from the slice goes back to it
            if not want.prefill:
                self._untake(part, took, want)
            return grant
        self._fill(part, grant)
        if want.prefill:  # the request's own share waits in the slice for its attempt
            part.tokens.held += ask.tokens if ask.tpm_need else 0
            return grant
        part.requests -= ask.rpm_need
        part.busy += ask.slots_need
        part.used += 1
        grant.funded = took.funded
        return grant

    def _part(self, want: Want) -> _Slice:
        name = want.name
        part = self._slices.get(name)
        if part is None:
            part = self._slices[name] = _Slice()
        now = self.clock()
        if now >= part.until:
            self._renew(name, part, now)
        part.rpm, part.tpm, part.budget, part.seed = want.rpm, want.tpm, want.budget, want.spend_seed
        if part.spend_key != want.spend_key:  # a new budget period: money left in the old one goes back
            if part.money.held > 0 and part.spend_key is not None:
                self._give_back(name, None, None, 0, part.spend_key, -part.money.held, Giveback(slots=0))
            part.spend_key, part.money = want.spend_key, _Pool(each=part.money.each)
        return part

    @staticmethod
    def _take(part: _Slice, want: Want) -> _Took:
        """Take what the slice holds of what one request needs."""
        took = _Took(
            1 if want.rpm and part.requests >= 1 else 0,
            1 if want.cap and part.busy < part.slots else 0,
            bool(want.tpm) and part.tokens.held >= max(want.tokens, 1),
            want.spend_key is not None and part.money.held > 0,
        )
        part.requests -= took.token
        part.busy += took.slot
        if took.paid:
            part.tokens.spend(want.tokens)
        return took

    @staticmethod
    def _untake(part: _Slice, took: _Took, want: Want) -> None:
        part.requests, part.busy = part.requests + took.token, part.busy - took.slot
        if took.paid:
            part.tokens.spend(-want.tokens)

    def _ask(self, part: _Slice, want: Want, took: _Took) -> Ask:
        """The round trip for what the slice could not give, plus what to lease alongside."""
        extras, cap = not part.leasing, want.cap
        return Ask(
            want.rpm, want.tpm, 0 if took.paid else want.tokens, cap,
            self.shared.instance if cap else None, self.shared.lease_ttl_s,
            None if took.funded else want.spend_key, want.spend_seed,
            rpm_need=1 - took.token if want.rpm else 0,
            rpm_more=self._more(part, want.rpm, grow=not took.token) if extras else 0,
            slots_need=1 - took.slot if cap else 0,
            slots_more=self._slots_more(part, cap) if extras and cap else 0,
            tpm_need=not took.paid,
            tpm_more=self._tokens_more(part, grow=not took.paid) if extras else 0,
            budget=want.budget,
            money_more=self._money_more(part, grow=True) if extras and not took.funded else 0.0,
        )  # fmt: skip

    @staticmethod
    def _fill(part: _Slice, grant: Grant) -> None:
        part.requests += grant.requests
        part.slots += grant.slots
        part.tokens.held += grant.tokens
        part.money.held += grant.money

    def _more(self, part: _Slice, rpm: int | None, *, grow: bool) -> int:
        share = self._share(rpm)
        if share <= 1:
            return 0
        if grow:  # the slice ran low within its period: lease more next time
            part.want = min(share, part.want * 2)
        return max(0, min(share, part.want) - max(0, part.requests))

    def _slots_low(self, part: _Slice, cap: int) -> bool:
        """Whether the slice's spare slots are down to `REFILL_AT` of what it may keep spare."""
        share = self._share(cap)
        return share > 1 and part.slots - part.busy < share * REFILL_AT

    def _slots_more(self, part: _Slice, cap: int) -> int:
        """Slots to lease beyond the request's own (if any), so `SPARES_FILL` of the share is spare after."""
        share = self._share(cap)
        if share <= 1:
            return share  # a small cap: a spare slot at most, as a request's own round trip leases
        return max(0, int(share * SPARES_FILL) - (part.slots - part.busy))

    def _tokens_more(self, part: _Slice, *, grow: bool) -> int:
        return int(part.tokens.more(self._share(part.tpm), grow=grow)) if part.tpm else 0

    def _money_more(self, part: _Slice, *, grow: bool) -> float:
        if part.spend_key is None or not part.budget:
            return 0.0
        return part.money.more(part.budget / (LEASE_DIVISOR * self.shared.live_instances), grow=grow)

    def _refill(self, name: str, part: _Slice, cap: int | None) -> None:
        """Top the slice up in the background, so the request that would find it empty doesn't wait."""
        if part.refilling or not self.shared.up:
            return
        # Only what runs low grows: a top-up for slots leases no more rpm tokens than last time.
        rpm_more = self._more(part, part.rpm, grow=part.requests < part.want * REFILL_AT) if part.rpm else 0
        tpm_more = self._tokens_more(part, grow=part.tokens.low())
        money_more = self._money_more(part, grow=part.money.low())
        slots_more = self._slots_more(part, cap) if cap and self._share(cap) > 1 else 0
        if rpm_more <= 0 and tpm_more <= 0 and money_more <= 0 and slots_more <= 0:
            return
        ask = Ask(
            part.rpm, part.tpm, 0, cap, self.shared.instance if cap else None, self.shared.lease_ttl_s,
            part.spend_key if money_more > 0 else None, part.seed,
            rpm_need=0, rpm_more=rpm_more, slots_need=0, slots_more=slots_more, tpm_need=False,
            tpm_more=tpm_more, budget=part.budget, money_more=money_more,
        )  # fmt: skip
        part.refilling = True
        _sent(part.tokens, part.money, ask)
        if self.shared.spawn(self._refilled(name, part, ask, part.money)) is None:
            part.refilling = False
            part.tokens.leases -= tpm_more > 0
            part.money.leases -= money_more > 0

    async def _refilled(self, name: str, part: _Slice, ask: Ask, money: _Pool) -> None:
        grant = Grant()  # nothing, when the round trip fails
        try:
            grant = await self.shared.acquire(name, ask)
        finally:
            part.refilling = False
            self._landed(name, part.tokens, money, ask, grant)
        if self._slices.get(name) is not part:  # dropped meanwhile: the store forgot it too
            return
        if grant.money and part.spend_key != ask.spend_key:  # a new period began meanwhile
            self._give_back(name, None, None, 0, ask.spend_key, -grant.money, Giveback(slots=0))
            grant.money = 0.0
        self._fill(part, grant)

    def _landed(self, name: str, tokens: _Pool, money: _Pool, ask: Ask, grant: Grant) -> None:
        """Net the debts run up while a tpm or money lease was on its way against it (`grant.tokens`
        and `grant.money` are what the slice will hold) and give that much back in one release:
        the store counted those debts too."""
        tpm = int(tokens.landed(grant.tokens)) if ask.tpm_more > 0 else 0
        cost = money.landed(grant.money) if ask.money_more > 0 else 0.0
        if tpm > 0 or cost > 0:
            grant.tokens, grant.money = grant.tokens - tpm, grant.money - cost
            self._give_back(name, None, ask.tpm, -tpm, ask.spend_key, -cost, Giveback(slots=0))

    def release(
        self,
        name: str,
        *,
        cap: int | None = None,
        tpm: int | None = None,
        tokens: int = 0,
        estimate: int = 0,
        spend_key: str | None = None,
        cost: float = 0.0,
        epoch: int | None = None,
    ) -> None:
        """A request admitted by `admit` (in `epoch`) is done: free its slot (kept for the next
        one when the slice may hold spares), and settle its tokens beyond its `estimate` and its
        cost against the slice, the part the slice cannot cover with the store in the background."""
        part = self._slices.get(name) if epoch in (None, self.epoch) else None
        slots = 0
        if cap and part is not None and part.busy > 0:
            part.busy -= 1
            share, spare = self._share(cap), part.slots - part.busy
            if spare > share:  # past what it may keep spare: back to half of it (`SPARES_FILL`)
                slots = spare - (share // 2 if share > 1 else share)
                part.slots -= slots
        if part is not None and tpm:
            part.tokens.observe(estimate + tokens)
            if part.tokens.held > 0 or part.tokens.want > 0 or part.tokens.leases:
                tokens = int(part.tokens.spend(tokens))
        if part is not None and spend_key is not None and spend_key == part.spend_key and cost > 0:
            part.money.observe(cost)
            if part.money.held > 0 or part.money.leases:  # a debt while one is on its way is netted
                cost = part.money.spend(cost)
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
        tokens, money = int(part.tokens.renew()), part.money.renew()
        part.used, part.until = 0, now + LEASE_S
        if requests <= 0 and spare <= 0 and tokens <= 0 and money <= 0:
            return
        part.requests -= requests
        part.slots -= spare
        back = Giveback(slots=spare, rpm=part.rpm, requests=requests)
        self._give_back(name, part, part.tpm, -tokens, part.spend_key, -money, back)

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
