"""The operations a shared store performs atomically, and what they answer.

Each is one round trip, decided on the server side (a Lua script on Redis, one step of the
holder's event loop on one box), so several instances never over-admit between a read and
a write. Names are scoped by the caller: `provider.<name>` or `key.<id>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

Handler = Callable[[str, bytes], None]
"""Called with (channel, message) for every message published on a shared channel."""

LIMITS = ("", "rpm", "tpm", "concurrency")


class Grant(msgspec.Struct, array_like=True):
    """The answer to `acquire`: `wait` 0.0 when admitted, else seconds until it may be (inf: a slot)."""

    wait: float = 0.0
    limit: str = ""  # which limit refused: rpm, tpm or concurrency
    spend: float | None = None  # the key's spend this period, when asked for
    requests: int = 0  # rpm tokens taken (the one needed plus any of `rpm_more` there were)
    slots: int = 0  # concurrency slots added to the lease
    tokens: int = 0  # tpm tokens leased beyond the request's own (`tpm_more`)
    money: float = 0.0  # budget leased: added to the spend counter now, spent locally (`money_more`)
    funded: bool = False  # served from a budget slice held here: the budget had room (no spend read)


class Ask(msgspec.Struct, array_like=True, frozen=True):
    """What `acquire` checks: any limit left as None is not checked.

    What is needed is all-or-none; the `*_more` extras are best-effort, taken only when the
    needed part is admitted and only as far as there is room. They are how an instance leases
    a slice of a limit to spend locally (`quota.py`) while the total stays exact: rpm tokens,
    concurrency slots, tpm tokens, and money under `budget` (added to the spend counter now).
    """

    rpm: int | None = None
    tpm: int | None = None
    tokens: int = 0  # taken from tpm up front; the rest settles on release
    cap: int | None = None  # max_concurrency: slots are held by `lease` until released or expired
    lease: str | None = None  # who holds the slots (an instance, or one request)
    ttl_s: float = 0.0
    spend_key: str | None = None  # also answer this spend counter, seeding it if absent
    spend_seed: float = 0.0
    rpm_need: int = 1  # rpm tokens this request needs (0: it has one already)
    rpm_more: int = 0  # rpm tokens to lease beyond it, if there is room
    slots_need: int = 1  # concurrency slots needed (0: the lease holds a free one already)
    slots_more: int = 0
    tpm_need: bool = True  # check tpm for `tokens` (False: the slice paid them; only lease `tpm_more`)
    tpm_more: int = 0  # tpm tokens to lease beyond `tokens`, if the bucket has them
    budget: float | None = None  # the spend counter's limit: `money_more` is leased only below it
    money_more: float = 0.0  # budget to lease: at most what is left of it


class Giveback(msgspec.Struct, array_like=True, frozen=True):
    """What `release` returns besides a request's lease: leased tokens and slots not used."""

    slots: int = 1  # slots the lease gives back
    rpm: int | None = None
    requests: int = 0  # rpm tokens given back


class Budget(msgspec.Struct, array_like=True, frozen=True):
    """One spend counter that `charge_budgets` adds to and checks.

    `counter` names the budget and its period, so a new period starts a new counter:
    `team.<id>:<period start>`, `user.<key id>.<end user>:<period start>`. `limit` None
    counts without checking. `seed` is the spend the ledger already knows, used only when
    the store has no counter yet (a new period, or the store restarted empty).
    """

    counter: str
    limit: float | None = None
    seed: float = 0.0


class BudgetCheck(msgspec.Struct, array_like=True):
    """The answer to `charge_budgets`: each budget's spend after the charge, in the order asked."""

    spends: list[float]
    over: int = -1  # the index of the first budget at or past its limit; -1 when none is

    @property
    def refused(self) -> bool:
        return self.over >= 0


STREAK_TTL_S = 600
"""A failure streak nobody added to for this long is forgotten."""

SPEND_TTL_S = 40 * 24 * 3600.0
"""A spend counter not charged for this long is dropped (longer than any budget period but a year's)."""


class SharedStore(Protocol):
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...
    async def ping(self) -> None: ...

    async def acquire(self, name: str, ask: Ask) -> Grant:
        """Check and take every limit in `ask` at once, or none of them."""

    async def acquire_all(self, asks: list[tuple[str, Ask]]) -> list[Grant]:
        """`acquire` for several names in one atomic step and one round trip (a key, its team, an
        end user): each name is all-or-none on its own, answered in the order asked."""

    async def release(
        self,
        name: str,
        lease: str | None,
        tpm: int | None,
        tokens: int,
        spend_key: str | None,
        cost: float,
        back: Giveback | None = None,
    ) -> None:
        """Free a lease's slots (`back.slots`, one by default), settle `tokens` more (or fewer)
        against tpm, give back `back.requests` rpm tokens, add `cost` to an existing spend."""

    async def renew(self, name: str, leases: list[str], ttl_s: float) -> None:
        """Push the expiry of leases still held (a killed instance's slots simply run out)."""

    async def charge_budgets(self, budgets: list[Budget], cost: float) -> BudgetCheck:
        """Add `cost` to every budget's counter and answer each one's spend, in one atomic step.

        Admission asks with cost 0.0 and refuses the request when `over` >= 0; the finished
        request charges its real cost (always added: the money is spent). Across workers and
        instances a budget is therefore overshot by at most the cost of the requests already
        admitted and in flight when it ran out. A counter absent from the store starts at its
        `seed`; each charge keeps it for `SPEND_TTL_S`.

        >>> check = await store.charge_budgets([Budget("team.t1:1767225600", 10.0, seed=9.5)], 0.0)
        >>> check.refused, check.spends                     # doctest: +SKIP
        (False, [9.5])
        """

    async def streak(self, counter: str, failed: bool) -> int:
        """Count one more failure in a row (answering the streak), or end the streak (answering 0).

        Circuit breakers count failures here, so several instances reach one threshold together
        instead of each counting its own (or overwriting each other's counts)."""

    async def incr(self, counter: str) -> int: ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, handler: Handler) -> None:
        """Receive every message published on any channel (including one's own)."""

    async def heartbeat(self, instance: str, info: bytes, ttl_s: float) -> None: ...

    async def instances(self) -> list[bytes]:
        """The info of every instance whose heartbeat has not expired."""

    async def put_blob(self, key: str, value: bytes, ttl_s: float) -> None: ...
    async def get_blob(self, key: str) -> bytes | None: ...
    async def delete_blob(self, key: str) -> bool: ...
