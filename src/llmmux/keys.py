"""Virtual API keys: what a key may do, and the in-memory ring the hot path checks.

A key's secret is `sk-llmmux-` plus 32 random bytes (256 bits), shown once when it is
created. Only its SHA-256 is stored. A slow password hash (bcrypt, argon2) protects
low-entropy secrets that can be guessed; a 256-bit random secret cannot be, so a fast
hash is as safe, and it lets the gateway find a key by its hash in one dict lookup.

`KeyRing` holds every key, its spend in the current budget period and its rate buckets,
so admitting a request does no database I/O. The ledger refreshes it in the background.

With a shared store (`KeyRing.shared`), a key's rpm and tpm buckets and its spend this
period live there instead, so they hold across workers and instances: `admit_shared`
checks them in one round trip, and `record` adds each request's cost and tokens at once.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .enduser import MAX_TRACKED, EndUserBuckets, EndUserLimits, parse_alert_at, parse_end_user_limits
from .errors import AuthenticationFailed, BudgetExceeded, PermissionDenied, RateLimited, SharedStateUnavailable
from .limits.key_buckets import KeyLimits
from .periods import BUDGET_PERIODS, iso, period_end, period_start
from .shared.client import Shared, SharedDown
from .shared.quota import Want
from .shared.store import Grant
from .state import Clock
from .tags import parse_tags

KEY_PREFIX = "sk-llmmux-"
DEFAULT_BUDGET_PERIOD = "monthly"
SHARED_NAME = "key."
END_USER_NAME = "eu."
KEYS_CHANNEL = "keys"  # a key was created, changed or revoked: its id, for every instance to reload
ADMIN_SCOPE = "admin"
METRICS_SCOPE = "metrics"
SCOPES = (ADMIN_SCOPE, METRICS_SCOPE)
"""What a key may do besides calling models: `admin` is everything the master key may do
(the admin API, model management on backends, full health details); `metrics` reads /metrics."""


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str | bytes) -> str:
    data = secret.encode() if isinstance(secret, str) else secret
    return hashlib.sha256(data).hexdigest()


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


@dataclass(slots=True)
class VirtualKey:
    """A key as stored: limits and state, never the secret."""

    id: str
    name: str
    hash: str
    hint: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    budget_usd: float | None = None
    budget_period: str = DEFAULT_BUDGET_PERIOD
    rpm: int | None = None
    tpm: int | None = None
    models: list[str] = field(default_factory=list)
    scopes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # added to every request the key makes
    end_user_limits: EndUserLimits | None = None  # for each end user of the key on its own
    team_id: str | None = None  # the team whose budget and limits the key draws on as well
    block_free: bool = False  # past the budget, refuse zero-priced (local) models too
    alert_at: float | None = None  # alert at this fraction of the budget (None: alerts.threshold)

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    @property
    def restricted(self) -> bool:
        """Whether an allow-list limits the models this key may use."""
        return bool(self.models)

    def allows(self, model: str) -> bool:
        return self.allows_any((model,))

    def allows_any(self, names: Iterable[str]) -> bool:
        """Whether any of the names a routed candidate goes by is on the allow-list (see `RouteTable.names_of`)."""
        if not self.models:
            return True
        match = _allow_list(tuple(self.models))
        return any(match(name) for name in names)

    def refusal(self, model: str) -> PermissionDenied:
        return PermissionDenied(
            f"The API key '{self.name}' may not use model '{model}' (allowed: {', '.join(self.models)}).",
            param="model",
            code="model_not_allowed",
        )

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def public(self, now: float, spend: float | None = None) -> dict[str, Any]:
        """What `keys list` and the admin API show: everything but the hash."""
        return {
            "id": self.id,
            "name": self.name,
            "key_hint": self.hint,
            "state": self.state(now),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at),
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "spend_usd": spend,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "models": list(self.models),
            "scopes": list(self.scopes),
            "tags": list(self.tags),
            "end_user_limits": self.end_user_limits.public() if self.end_user_limits else None,
            "team_id": self.team_id,
            "block_free": self.block_free,
            "alert_at": self.alert_at,
        }


def make_key(name: str, *, now: float | None = None, **limits: Any) -> tuple[VirtualKey, str]:
    """A new key and its secret (the only time the secret exists in clear)."""
    secret = new_secret()
    key = VirtualKey(
        new_key_id(),
        name,
        hash_secret(secret),
        f"{KEY_PREFIX}...{secret[-4:]}",
        now if now is not None else time.time(),
    )
    apply_changes(key, limits)
    return key, secret


UPDATABLE = (
    "name",
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "models",
    "scopes",
    "expires_at",
    "tags",
    "end_user_limits",
    "team_id",
    "block_free",
    "alert_at",
)


def apply_changes(key: VirtualKey, changes: dict[str, Any]) -> None:
    """Validate and apply changes; ValueError says what is wrong. None clears a limit."""
    for name, value in changes.items():
        if name not in UPDATABLE:
            raise ValueError(f"unknown key field {name!r} (known: {', '.join(UPDATABLE)})")
        setattr(key, name, _checked(name, value))


def _checked(name: str, value: Any) -> Any:
    if name == "name":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("name: expected a non-empty string")
        return value.strip()
    if name == "budget_period":
        if value not in BUDGET_PERIODS:
            raise ValueError(f"budget_period: expected one of {', '.join(BUDGET_PERIODS)}, got {value!r}")
        return value
    if name == "models":
        return parse_models(value)
    if name == "scopes":
        return parse_scopes(value)
    if name == "tags":
        return parse_tags(value)
    if name == "end_user_limits":
        return parse_end_user_limits(value)
    if name == "block_free":
        if not isinstance(value, bool):
            raise ValueError(f"block_free: expected true or false, got {value!r}")
        return value
    if name == "team_id":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError("team: expected a team id or name, or null to leave the team")
        return value
    if value is None:
        return None
    if name == "alert_at":
        return parse_alert_at(value, name)
    if name in ("rpm", "tpm"):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}")
    return float(value)


def parse_models(value: Any) -> list[str]:
    """`"gpt-4o, llama*"` or a list of names and glob patterns; empty means every model."""
    if value is None:
        return []
    items = re.split(r"[,\s]+", value) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("models: expected a comma-separated string or a list of model names and patterns")
    return [i.strip() for i in items if i.strip()]


def parse_scopes(value: Any) -> list[str]:
    """`"admin,metrics"` or a list; empty (the default) means the key may only call models."""
    if value is None:
        return []
    items = re.split(r"[,\s]+", value) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"scopes: expected a list of {' and '.join(SCOPES)}")
    scopes = [i.strip() for i in items if i.strip()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"scopes: unknown scope {unknown[0]!r} (known: {', '.join(SCOPES)})")
    return sorted(set(scopes), key=SCOPES.index)


@functools.lru_cache(maxsize=1024)
def _allow_list(patterns: tuple[str, ...]) -> Any:
    """One compiled regex for a key's glob patterns (cached: keys are few, requests many)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match


class KeyRing:
    """Every key in memory, by hash and by id, with spend and rate buckets: the hot path's view.

    Spend in the current period = what the ledger held at the last refresh (`settled`)
    + what this process has recorded since and not yet written (`unsettled`).
    """

    def __init__(self, clock: Clock = time.time, monotonic: Clock = time.monotonic, kind: str = "API key") -> None:
        self.kind = kind  # what refusals name: "API key 'ci'", "team 'search'"
        self._clock = clock
        self._monotonic = monotonic
        self._by_hash: dict[str, VirtualKey] = {}
        self._by_id: dict[str, VirtualKey] = {}
        self._limits: dict[str, KeyLimits] = {}
        self.shared: Shared | None = None
        self._fallback: dict[str, KeyLimits] = {}
        self._fallback_share = 0
        self._settled: dict[str, float] = {}
        self._unsettled: dict[str, float] = {}
        self._periods: dict[str, float] = {}
        # Per (key, end user): spend in the key's current period, split like the key's own.
        self._user_settled: dict[tuple[str, str], float] = {}
        self._user_unsettled: dict[tuple[str, str], float] = {}
        self._user_buckets = EndUserBuckets(monotonic)
        # The shared store's spend as last seen at admission: with several instances it is the
        # fuller count (this process's own view misses what the others spent since the last refresh).
        self._shared_spend: dict[str, float] = {}
        self._user_shared_spend: dict[tuple[str, str], float] = {}
        # Told (owner, end user or None, spend before, spend after) when a request adds to a
        # budgeted spend: the owner's own budget, or (with an end user) its end-user budget (alerts).
        self.on_spend: Callable[[VirtualKey, str | None, float, float], None] | None = None

    def __len__(self) -> int:
        return len(self._by_id)

    def load(
        self,
        keys: Iterable[VirtualKey],
        settled: dict[str, float],
        user_settled: dict[tuple[str, str], float] | None = None,
    ) -> None:
        """Replace the keys and their settled spend with the store's; rate buckets survive."""
        keys = list(keys)
        self._user_settled = dict(user_settled or {})
        self._by_hash = {k.hash: k for k in keys}
        self._by_id = {k.id: k for k in keys}
        self._settled = {k.id: settled.get(k.id, 0.0) for k in keys}
        now = self._clock()
        self._periods = {k.id: period_start(k.budget_period, now) for k in keys}
        for key in keys:
            self._sync_limits(key)

    def put(self, key: VirtualKey, settled: float | None = None) -> None:
        """Add or replace one key (an admin change, or a key found in the store on a miss)."""
        old = self._by_id.get(key.id)
        if old is not None:
            self._by_hash.pop(old.hash, None)
        self._by_hash[key.hash] = key
        self._by_id[key.id] = key
        if settled is not None:
            self._settled[key.id] = settled
        self._settled.setdefault(key.id, 0.0)
        self._periods.setdefault(key.id, period_start(key.budget_period, self._clock()))
        self._sync_limits(key)

    def _sync_limits(self, key: VirtualKey) -> None:
        current = self._limits.get(key.id)
        if current is None or (current.rpm, current.tpm) != (key.rpm, key.tpm):
            self._limits[key.id] = KeyLimits(key.rpm, key.tpm, self._monotonic)

    def find(self, secret: bytes) -> VirtualKey | None:
        return self._by_hash.get(hash_secret(secret))

    def find_hash(self, digest: str) -> VirtualKey | None:
        return self._by_hash.get(digest)

    def get(self, key_id: str) -> VirtualKey | None:
        return self._by_id.get(key_id)

    def keys(self) -> list[VirtualKey]:
        return list(self._by_id.values())

    def spend(self, key_id: str) -> float:
        self._roll_period(key_id)
        return self._settled.get(key_id, 0.0) + self._unsettled.get(key_id, 0.0)

    def _roll_period(self, key_id: str) -> None:
        key = self._by_id.get(key_id)
        if key is None:
            return
        start = period_start(key.budget_period, self._clock())
        if self._periods.get(key_id) != start:
            self._periods[key_id] = start
            self._settled[key_id] = 0.0
            self._unsettled[key_id] = 0.0
            self._shared_spend.pop(key_id, None)
            for spent in (self._user_settled, self._user_unsettled, self._user_shared_spend):
                for slot in [s for s in spent if s[0] == key_id]:
                    del spent[slot]

    def end_user_spend(self, key_id: str, end_user: str) -> float:
        self._roll_period(key_id)
        slot = (key_id, end_user)
        return self._user_settled.get(slot, 0.0) + self._user_unsettled.get(slot, 0.0)

    def check_identity(self, key: VirtualKey) -> None:
        """401 for a revoked or expired key."""
        state = key.state(self._clock())
        if state == "revoked":
            raise AuthenticationFailed(f"The API key '{key.name}' has been revoked.")
        if state == "expired":
            raise AuthenticationFailed(f"The API key '{key.name}' expired at {iso(key.expires_at)}.")

    def admit(self, key_id: str, end_user: str | None = None, free: Callable[[], bool] | None = None) -> VirtualKey:
        """401 for a key gone bad; 429 over budget or over a rate limit. Which models it may use
        is checked against the routed candidates (`VirtualKey.allows_any`), not here."""
        key = self._valid(key_id)
        self._check_budget(key, self.spend(key.id), free)
        _refuse(self.kind, key, self._limits[key.id].admit())
        self._admit_end_user(key, end_user)
        return key

    async def admit_shared(
        self, key_id: str, end_user: str | None = None, free: Callable[[], bool] | None = None
    ) -> VirtualKey:
        """`admit`, with the key's buckets and spend in the shared store (one round trip at most)."""
        key = self._valid(key_id)
        await admit_together([(self, key)], end_user, free)
        return key

    def shared_wants(self, key: VirtualKey, end_user: str | None) -> list[Want]:
        """What a request of `key` needs of the shared store: its own limits and spend, then its end user's."""
        wants = []
        if key.rpm is not None or key.tpm is not None or key.budget_usd is not None:
            spend_key = self._spend_key(key) if key.budget_usd is not None else None
            name, seed = SHARED_NAME + key.id, self.spend(key.id)
            wants.append(Want(name, key.rpm, None, key.tpm, 0, spend_key, seed, key.budget_usd))
        limits = key.end_user_limits
        if end_user is not None and limits is not None:
            spend_key = self._end_user_spend_key(key, end_user) if limits.budget_usd is not None else None
            seed = self.end_user_spend(key.id, end_user)
            wants.append(
                Want(_end_user_name(key.id, end_user), limits.rpm, None, None, 0, spend_key, seed, sliced=False)
            )
        return wants

    def judge_shared(
        self, key: VirtualKey, end_user: str | None, grants: list[Grant], free: Callable[[], bool] | None
    ) -> None:
        """Refuse as the store answered `shared_wants` (the end user's limits first, then the key's)."""
        has_own = key.rpm is not None or key.tpm is not None or key.budget_usd is not None
        own = grants[0] if has_own else None
        if end_user is not None and key.end_user_limits is not None:
            self._judge_end_user(key, end_user, grants[-1])
        if own is None:
            self._check_budget(key, self.spend(key.id), free)
            return
        if own.spend is not None:
            self._shared_spend[key.id] = own.spend
        if not own.funded:  # else admitted from a slice of the budget this instance holds
            self._check_budget(key, own.spend if own.spend is not None else self.spend(key.id), free)
        if own.wait:
            which = "requests per minute" if own.limit == "rpm" else "tokens per minute"
            _refuse(self.kind, key, (which, own.wait))

    def admit_alone(self, key: VirtualKey, end_user: str | None, free: Callable[[], bool] | None) -> None:
        """This instance's own view while the shared store is out of reach (each limit shared by the live instances)."""
        assert self.shared is not None
        self._admit_end_user(key, end_user)
        self._check_budget(key, self.spend(key.id), free)
        if key.rpm is not None or key.tpm is not None:
            _refuse(self.kind, key, self._fallback_limits(key, self.shared.live_instances).admit())

    def _judge_end_user(self, key: VirtualKey, end_user: str, grant: Grant) -> None:
        limits = key.end_user_limits
        assert limits is not None
        if limits.budget_usd is not None:
            spent = grant.spend if grant.spend is not None else self.end_user_spend(key.id, end_user)
            if len(self._user_shared_spend) >= MAX_TRACKED:  # a hint for alerts only: forgetting is safe
                self._user_shared_spend.clear()
            self._user_shared_spend[(key.id, end_user)] = spent
            self._check_end_user_budget(key, end_user, spent)
        if grant.wait:
            self._refuse_end_user_rate(key, end_user, grant.wait)

    def _admit_end_user(self, key: VirtualKey, end_user: str | None) -> None:
        limits = key.end_user_limits
        if end_user is None or limits is None:
            return
        self._check_end_user_budget(key, end_user, self.end_user_spend(key.id, end_user))
        if limits.rpm is not None:
            wait = self._user_buckets.admit(key.id, end_user, limits.rpm)
            if wait is not None:
                self._refuse_end_user_rate(key, end_user, wait)

    def _check_end_user_budget(self, key: VirtualKey, end_user: str, spent: float) -> None:
        budget = key.end_user_limits.budget_usd if key.end_user_limits is not None else None
        if budget is not None and spent >= budget:
            raise BudgetExceeded(
                f"Budget exceeded for end user '{end_user}' of {self.kind} '{key.name}': spent ${spent:.4f}"
                f" of ${budget:.2f} {_period_phrase(key.budget_period)}{self._resets(key)}."
            )

    def _refuse_end_user_rate(self, key: VirtualKey, end_user: str, wait: float) -> None:
        rpm = key.end_user_limits.rpm if key.end_user_limits is not None else None
        raise RateLimited(
            f"Rate limit reached for end user '{end_user}' of {self.kind} '{key.name}': {rpm} requests"
            f" per minute. Try again in {wait:.1f}s.",
            retry_after=wait,
        )

    def _resets(self, key: VirtualKey) -> str:
        when = period_end(key.budget_period, self._clock())
        return f"; it resets at {iso(when)}" if when else ""

    def admit_valid(self, key_id: str) -> VirtualKey:
        """The key, or 401 when it is unknown, revoked or expired (the first step of admitting)."""
        return self._valid(key_id)

    def _valid(self, key_id: str) -> VirtualKey:
        key = self._by_id.get(key_id)
        if key is None:
            raise AuthenticationFailed(f"The {self.kind} is no longer valid.")
        self.check_identity(key)
        return key

    def _spend_key(self, key: VirtualKey) -> str:
        self._roll_period(key.id)
        return f"{key.id}:{self._periods.get(key.id, 0.0):.0f}"

    def _end_user_spend_key(self, key: VirtualKey, end_user: str) -> str:
        return f"{self._spend_key(key)}:eu:{end_user}"

    def _fallback_limits(self, key: VirtualKey, instances: int) -> KeyLimits:
        """This instance's share of a key's limits while the shared store is out of reach."""
        if self._fallback_share != instances:
            self._fallback, self._fallback_share = {}, instances
        limits = self._fallback.get(key.id)
        rpm = max(1, key.rpm // instances) if key.rpm else None
        tpm = max(1, key.tpm // instances) if key.tpm else None
        if limits is None or (limits.rpm, limits.tpm) != (rpm, tpm):
            limits = self._fallback[key.id] = KeyLimits(rpm, tpm, self._monotonic)
        return limits

    def _check_budget(self, key: VirtualKey, spent: float, free: Callable[[], bool] | None = None) -> None:
        """429 past the budget; `free` says the request reaches only zero-priced models, which pass a
        spent money budget unless the key says `block_free`."""
        if key.budget_usd is None:
            return
        if spent < key.budget_usd or (not key.block_free and free is not None and free()):
            return
        when = period_end(key.budget_period, self._clock())
        resets = f"; it resets at {iso(when)}" if when else ""
        period = "in total" if key.budget_period == "total" else f"this {_period_noun(key.budget_period)}"
        raise BudgetExceeded(
            f"Budget exceeded for {self.kind} '{key.name}': spent ${spent:.4f} of ${key.budget_usd:.2f} {period}{resets}."
        )

    # -- accounting --

    def record(self, key_id: str, cost: float, tokens: int, end_user: str | None = None) -> None:
        """A finished request's cost and tokens, counted until the ledger has written it."""
        key = self._by_id.get(key_id)
        if key is None:
            return
        self._roll_period(key_id)
        if cost:
            self._charge(key, cost)
            if end_user is not None:
                self._charge_end_user(key, end_user, cost)
        self._limits[key_id].charge_tokens(tokens)
        if self.shared is not None and (key.tpm or (cost and key.budget_usd is not None)):
            spend_key = self._spend_key(key) if key.budget_usd is not None else None
            self.shared.quotas.release(SHARED_NAME + key_id, tpm=key.tpm, tokens=tokens, spend_key=spend_key, cost=cost)

    def _charge(self, key: VirtualKey, cost: float) -> None:
        before = self.spend(key.id)
        self._unsettled[key.id] = self._unsettled.get(key.id, 0.0) + cost
        if key.budget_usd is None:
            return
        if key.id in self._shared_spend:
            before = max(before, self._shared_spend[key.id])
            self._shared_spend[key.id] = before + cost
        if self.on_spend is not None:
            self.on_spend(key, None, before, before + cost)

    def _charge_end_user(self, key: VirtualKey, end_user: str, cost: float) -> None:
        slot = (key.id, end_user)
        before = max(self.end_user_spend(key.id, end_user), self._user_shared_spend.get(slot, 0.0))
        self._user_unsettled[slot] = self._user_unsettled.get(slot, 0.0) + cost
        limits = key.end_user_limits
        if limits is None or limits.budget_usd is None:
            return
        if slot in self._user_shared_spend:
            self._user_shared_spend[slot] = before + cost
        if self.shared is not None:
            spend_key = self._end_user_spend_key(key, end_user)
            self.shared.release(_end_user_name(key.id, end_user), spend_key=spend_key, cost=cost)
        if self.on_spend is not None:
            self.on_spend(key, end_user, before, before + cost)

    def settled(self, costs: dict[str, float], user_costs: dict[tuple[str, str], float] | None = None) -> None:
        """The ledger wrote these costs: move them from unsettled to settled."""
        for key_id, cost in costs.items():
            if key_id in self._unsettled:
                self._unsettled[key_id] -= cost
                self._settled[key_id] = self._settled.get(key_id, 0.0) + cost
        for slot, cost in (user_costs or {}).items():
            if slot in self._user_unsettled:
                self._user_unsettled[slot] -= cost
                self._user_settled[slot] = self._user_settled.get(slot, 0.0) + cost

    def budget_starts(self) -> dict[str, float]:
        return budget_starts(self._by_id.values(), self._clock())


def budget_starts(keys: Iterable[VirtualKey], now: float) -> dict[str, float]:
    """For each key with a budget, when its current period began (what its spend is summed from)."""
    return {k.id: period_start(k.budget_period, now) for k in keys if k.budget_usd is not None}


def _period_noun(period: str) -> str:
    return {"daily": "day", "weekly": "week", "monthly": "month"}.get(period, period)


async def admit_together(
    owners: list[tuple[KeyRing, VirtualKey]],
    end_user: str | None,
    free: Callable[[], bool] | None = None,
    ahead: Callable[[], list[Want]] | None = None,
) -> None:
    """Admit a request for a key and its team (and their end user) against the shared store, in
    one round trip when their slices cannot serve it; `ahead` (the provider the request will
    likely reach) rides along only when that round trip happens anyway.

    Refusals come in order: the key's, then its team's. While the store is out of reach each
    falls back to this instance's share of its limits (or refuses, with `on_failure: closed`).
    """
    shared = owners[0][0].shared
    if shared is None:  # one process: its own buckets
        for ring, key in owners:
            ring._admit_end_user(key, end_user)
            ring._check_budget(key, ring.spend(key.id), free)
        return
    plans = [ring.shared_wants(key, end_user) for ring, key in owners]
    wants = [want for plan in plans for want in plan]
    try:
        grants = await shared.quotas.admit_many(wants, ahead) if wants else []
    except SharedDown:
        _refuse_if_closed(shared)
        for ring, key in owners:
            ring.admit_alone(key, end_user, free)
        return
    at = 0
    for (ring, key), plan in zip(owners, plans, strict=True):
        ring.judge_shared(key, end_user, grants[at : at + len(plan)], free)
        at += len(plan)


def _refuse_if_closed(shared: Shared) -> None:
    if shared.refuses:
        raise SharedStateUnavailable(
            "The gateway's shared state is unavailable and state.on_failure is closed; try again shortly."
        )


def _end_user_name(owner_id: str, end_user: str) -> str:
    """The shared store's name for one end user of a key or team (its rpm bucket)."""
    return f"{END_USER_NAME}{owner_id}.{end_user}"


def _refuse(kind: str, key: VirtualKey, limited: tuple[str, float] | None) -> None:
    if limited is None:
        return
    which, wait = limited
    limit = key.rpm if which.startswith("requests") else key.tpm
    raise RateLimited(
        f"Rate limit reached for {kind} '{key.name}': {limit} {which}. Try again in {wait:.1f}s.",
        retry_after=wait,
    )


def end_user_budget_starts(keys: Iterable[VirtualKey], now: float) -> dict[str, float]:
    """For each key whose end users have a budget, when its current period began."""
    return {
        k.id: period_start(k.budget_period, now)
        for k in keys
        if k.end_user_limits is not None and k.end_user_limits.budget_usd is not None
    }


def _period_phrase(period: str) -> str:
    return "in total" if period == "total" else f"this {_period_noun(period)}"
