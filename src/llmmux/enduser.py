"""End users: the people or tenants behind an application's key, tracked and limited apart.

An application names its end user in the `x-llmmux-end-user` header, OpenAI's `user` field
or Anthropic's `metadata.user_id` (both arrive as the canonical request's `user`); the
header wins, since it is the gateway's own. Nothing is created per end user: a key's
`end_user_limits: {rpm, budget}` applies to each end user of that key separately, with
state kept only for end users seen recently.

With `privacy: {hash_end_users: true}` an id is replaced by its SHA-256 digest
before anything keeps it (limits, the ledger, logs), so no raw id is stored. An id over
MAX_END_USER_LENGTH characters is always kept as its hash.

>>> end_user_id(None, "alice", hashed=False)
'alice'
>>> end_user_id(b"bob", "alice", hashed=True)[:3]
'eu_'
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .limits.key_buckets import KeyLimits

HEADER = b"x-llmmux-end-user"
MAX_END_USER_LENGTH = 256
HASH_PREFIX = "eu_"
# End users whose limits are remembered at once; the least recently seen are forgotten (a
# forgotten end user starts again with a full rpm bucket, never with less).
MAX_TRACKED = 100_000


def end_user_id(header: bytes | None, user: str | None, *, hashed: bool) -> str | None:
    """The request's end user (header first, then the body's), hashed when the config says so."""
    raw = header.decode("utf-8", "replace").strip() if header else (user or "").strip()
    if not raw:
        return None
    # An id too long to keep (some clients send a JSON object as Anthropic's user_id) is kept
    # as its hash: still one end user, never a refused request.
    return hash_end_user(raw) if hashed or len(raw) > MAX_END_USER_LENGTH else raw


def hash_end_user(raw: str) -> str:
    return HASH_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class EndUserLimits:
    """Limits each end user of a key gets on its own: requests per minute and USD per key's budget period."""

    rpm: int | None = None
    budget_usd: float | None = None
    alert_at: float | None = None  # alert at this fraction of each end user's budget (None: alerts.threshold)

    def public(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"rpm": self.rpm, "budget": self.budget_usd}
        if self.alert_at is not None:
            shown["alert_at"] = self.alert_at
        return shown


def parse_end_user_limits(value: Any) -> EndUserLimits | None:
    """`{rpm: 10, budget: 1.5, alert_at: 0.9}` as an admin gives it; None clears; ValueError says what is wrong."""
    if value is None:
        return None
    if isinstance(value, EndUserLimits):
        return value
    if not isinstance(value, dict) or not set(value) <= {"rpm", "budget", "alert_at"}:
        raise ValueError("end_user_limits: expected {rpm: N, budget: USD, alert_at: FRACTION}")
    rpm, budget = value.get("rpm"), value.get("budget")
    if rpm is not None and (isinstance(rpm, bool) or not isinstance(rpm, int) or rpm <= 0):
        raise ValueError(f"end_user_limits.rpm: expected a positive integer, got {rpm!r}")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int | float) or budget < 0):
        raise ValueError(f"end_user_limits.budget: expected a non-negative number, got {budget!r}")
    alert_at = parse_alert_at(value.get("alert_at"), "end_user_limits.alert_at")
    if rpm is None and budget is None:
        return None
    return EndUserLimits(rpm, None if budget is None else float(budget), alert_at)


def parse_alert_at(value: Any, name: str = "alert_at") -> float | None:
    """A budget's alert threshold: a fraction in (0, 1], e.g. 0.8 for 80%; None means `alerts.threshold`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"{name}: expected a fraction of the budget in (0, 1], e.g. 0.8, got {value!r}")
    return float(value)


class EndUserBuckets:
    """The rpm buckets of the end users seen recently, per (key, end user); least recently seen forgotten."""

    def __init__(self, monotonic: Callable[[], float], max_tracked: int = MAX_TRACKED) -> None:
        self._monotonic = monotonic
        self._max = max_tracked
        self._buckets: OrderedDict[tuple[str, str], KeyLimits] = OrderedDict()

    def admit(self, owner: str, end_user: str, rpm: int) -> float | None:
        """None if the end user may send a request now, else seconds to wait."""
        slot = (owner, end_user)
        limits = self._buckets.get(slot)
        if limits is None or limits.rpm != rpm:
            limits = self._buckets[slot] = KeyLimits(rpm, None, self._monotonic)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(slot)
        limited = limits.admit()
        return None if limited is None else limited[1]
