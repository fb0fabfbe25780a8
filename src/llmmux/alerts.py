"""Budget alerts: a log event, and a POST to the admin's webhook, when a budget is nearly or fully spent.

Every budget alerts at most twice per period: when its spend reaches its alert threshold
(its own `alert_at`, else `alerts.threshold`, 80% by default) and when it reaches the whole
budget. That holds for a key's and a team's budget and for the budget of each end user of
a key or team (`end_user_limits: {budget, alert_at}`). With shared state (Redis, or the
holder of `--workers`) the instances agree on who sends it, so one alert goes out, not one
per instance; a restarted instance does not send it again within the period either (the
claim is a one-slot lease in the store that expires with the period).

The webhook URL comes from the config only (`alerts.webhook_url`), never from a client, and
the POST runs in the background: a slow or failing receiver never delays a request. It
receives one JSON object per alert:

    {"event": "budget_alert", "level": "threshold" | "exhausted",
     "kind": "key" | "team" | "end_user",      # whose budget
     "id": "key_…" | "team_…", "name": "ci",   # the key or team (of the end user, for "end_user")
     "end_user": "alice" | null,              # as stored (hashed with privacy.hash_end_users)
     "budget_usd": 25.0, "budget_period": "monthly", "spent_usd": 20.13,
     "fraction": 0.8,                           # the level's share of the budget
     "period_start": "2026-12-01T00:00:00Z", "resets_at": "2027-01-01T00:00:00Z" | null,
     "at": "2026-12-06T21:40:00Z"}

    alerts = BudgetAlerts(lambda: router.config.alerts)
    ring.on_spend = alerts.spent
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .config.model import AlertsConfig
from .keys import VirtualKey
from .periods import iso, period_end, period_start
from .shared.client import Shared, SharedDown
from .shared.store import Ask
from .teams import Team

log = logging.getLogger("llmmux.alerts")
WEBHOOK_TIMEOUT_S = 5.0
MAX_REMEMBERED = 100_000
CLAIM = "alert."  # a claim per budget, period and level in the shared store: whoever gets it sends the alert
TOTAL_CLAIM_S = 400 * 86400.0  # a `total` budget has no period end: its claim lasts this long


class BudgetAlerts:
    def __init__(self, config: Callable[[], AlertsConfig], clock: Callable[[], float] = time.time) -> None:
        self._config = config  # read at each alert, so a config reload applies
        self._clock = clock
        self.shared: Shared | None = None
        self._sent: set[tuple[str, str | None, float, str]] = set()  # (owner, end user, period start, level)
        self._tasks: set[asyncio.Task[None]] = set()

    def spent(self, owner: VirtualKey, end_user: str | None, before: float, after: float) -> None:
        """A request took a budgeted spend from `before` to `after` (the owner's, or one end user's)."""
        budget, alert_at = _budget(owner, end_user)
        if not budget:
            return
        threshold = alert_at if alert_at is not None else self._config().threshold
        for level, fraction in (("threshold", threshold), ("exhausted", 1.0)):
            mark = budget * fraction
            # Shared, this instance's `before` may miss what others spent: whoever sees the mark
            # reached first sends it, and the shared counter keeps the others quiet.
            if after >= mark and (self.shared is not None or before < mark):
                self._alert(owner, end_user, level, fraction, budget, after)

    def _alert(
        self, owner: VirtualKey, end_user: str | None, level: str, fraction: float, budget: float, spent: float
    ) -> None:
        now = self._clock()
        start = period_start(owner.budget_period, now)
        seen = (owner.id, end_user, start, level)
        if seen in self._sent:
            return
        if len(self._sent) >= MAX_REMEMBERED:
            self._sent.clear()
        self._sent.add(seen)
        event: dict[str, Any] = {
            "event": "budget_alert",
            "level": level,
            "kind": "end_user" if end_user is not None else "team" if isinstance(owner, Team) else "key",
            "id": owner.id,
            "name": owner.name,
            "end_user": end_user,
            "budget_usd": budget,
            "budget_period": owner.budget_period,
            "spent_usd": round(spent, 6),
            "fraction": fraction,
            "period_start": iso(start),
            "resets_at": iso(period_end(owner.budget_period, now)),
            "at": iso(now),
        }
        end = period_end(owner.budget_period, now)
        claim = (f"{CLAIM}{owner.id}.{end_user or ''}.{start:.0f}.{level}", (end - now) if end else TOTAL_CLAIM_S)
        try:
            task = asyncio.get_running_loop().create_task(self._send(event, claim))
        except RuntimeError:  # no loop (a synchronous caller): the log line is the alert
            log.warning("budget alert: %s", event)
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, event: dict[str, Any], claim: tuple[str, float]) -> None:
        shared = self.shared
        if shared is not None:
            # The claim is the store's one-slot lease, held until the period ends and then gone
            # (a counter would never expire: one per budget, period and level, forever).
            name, ttl_s = claim
            ask = Ask(cap=1, lease=shared.instance, ttl_s=max(ttl_s, 60.0))
            try:
                if (await shared.call(shared.store.acquire(name, ask))).wait:
                    return  # another instance (or this one before a restart) sent it
            except SharedDown:
                pass  # better twice than never
        log.warning("budget alert: %s", event)
        url = self._config().webhook_url
        if url:
            await self._post(str(url), event)

    async def _post(self, url: str, event: dict[str, Any]) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, json=event) as reply:
                if reply.status >= 400:
                    log.warning("budget alert webhook answered %s", reply.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("budget alert webhook failed: %s", type(exc).__name__)


def _budget(owner: VirtualKey, end_user: str | None) -> tuple[float | None, float | None]:
    """The budget a spend counts against and its own alert threshold, if it has one."""
    if end_user is None:
        return owner.budget_usd, owner.alert_at
    limits = owner.end_user_limits
    return (limits.budget_usd, limits.alert_at) if limits is not None else (None, None)
