"""Budget alerts: a log event, and a POST to the admin's webhook, when a budget is nearly or fully spent.

Each key's and team's budget alerts twice per period at most: when its spend crosses
`alerts.threshold` (80% by default) and when it reaches the whole budget. The webhook URL
comes from the config only (`alerts.webhook_url`), never from a client, and the POST runs
in the background: a slow or failing receiver never delays a request.

    alerts = BudgetAlerts(lambda: router.config.alerts)
    ring.on_spend = alerts.spent
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

from .config.model import AlertsConfig
from .keys import VirtualKey
from .periods import iso, period_start
from .teams import Team

log = logging.getLogger("llmmux.alerts")
WEBHOOK_TIMEOUT_S = 5.0
MAX_REMEMBERED = 100_000


class BudgetAlerts:
    def __init__(self, config: Callable[[], AlertsConfig], clock: Callable[[], float] = time.time) -> None:
        self._config = config  # read at each alert, so a config reload applies
        self._clock = clock
        self._sent: set[tuple[str, float, str]] = set()  # (owner, period start, level)
        self._tasks: set[asyncio.Task[None]] = set()

    def spent(self, owner: VirtualKey, before: float, after: float) -> None:
        budget = owner.budget_usd
        if not budget:
            return
        for level, fraction in (("threshold", self._config().threshold), ("exhausted", 1.0)):
            mark = budget * fraction
            if before < mark <= after:
                self._alert(owner, level, fraction, after)

    def _alert(self, owner: VirtualKey, level: str, fraction: float, spent: float) -> None:
        start = period_start(owner.budget_period, self._clock())
        seen = (owner.id, start, level)
        if seen in self._sent:
            return
        if len(self._sent) >= MAX_REMEMBERED:
            self._sent.clear()
        self._sent.add(seen)
        event: dict[str, object] = {
            "event": "budget_alert",
            "level": level,
            "kind": "team" if isinstance(owner, Team) else "key",
            "id": owner.id,
            "name": owner.name,
            "budget_usd": owner.budget_usd,
            "budget_period": owner.budget_period,
            "spent_usd": round(spent, 6),
            "fraction": fraction,
            "period_start": iso(start),
        }
        log.warning("budget alert: %s", event)
        url = self._config().webhook_url
        if url:
            try:
                task = asyncio.get_running_loop().create_task(self._post(str(url), event))
            except RuntimeError:  # no loop (a synchronous caller): the log line is the alert
                return
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, event: dict[str, object]) -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S)
            async with aiohttp.ClientSession(timeout=timeout) as session, session.post(url, json=event) as reply:
                if reply.status >= 400:
                    log.warning("budget alert webhook answered %s", reply.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("budget alert webhook failed: %s", type(exc).__name__)
