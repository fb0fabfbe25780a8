"""Active health checks: each provider's health endpoint, on its own schedule.

One check makes up to `retry_attempts` probes a little apart and stops at the first that
passes, so one lost packet does not mark a provider unavailable. Each provider is checked
by its own background task, first at start and then every `interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping

from ..config.health_checks import HealthSettings
from ..providers.base import HealthResult, Provider, probe_failure
from ..tasks import cancel_and_wait
from .breaker import ProbeRecord
from .monitor import HealthMonitor

log = logging.getLogger("llmmux.health")

Sleep = Callable[[float], Awaitable[None]]
JITTER = 0.1  # spread checks so providers sharing a host are not probed in lockstep


async def check(provider: Provider, settings: HealthSettings, sleep: Sleep = asyncio.sleep) -> ProbeRecord:
    """One health check: up to `retry_attempts` probes; the record of the last one made."""
    result = HealthResult(False, 0.0)
    attempts = 0
    for attempt in range(settings.retry_attempts):
        attempts = attempt + 1
        result = await probe(provider, settings)
        if result.ok:
            break
        if attempts < settings.retry_attempts:
            await sleep(settings.retry_delay_s)
    return ProbeRecord(time.monotonic(), result.ok, result.latency_ms, result.status, result.detail, attempts)


async def probe(provider: Provider, settings: HealthSettings) -> HealthResult:
    """One probe, bounded by the timeout even if the provider ignores it."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(settings.timeout_s + 0.5):
            return await provider.health(settings.timeout_s)
    except TimeoutError:
        elapsed = (time.perf_counter() - started) * 1000
        return HealthResult(False, elapsed, None, f"no answer in {settings.timeout_s:g} s", provider.health_url())
    except Exception as exc:  # a provider's own `health` that raises: a failed probe, not a broken schedule
        elapsed = (time.perf_counter() - started) * 1000
        return HealthResult(False, elapsed, None, probe_failure(exc), provider.health_url())


class Prober:
    """Runs the health checks of a set of providers until stopped."""

    def __init__(self, monitor: HealthMonitor, providers: Mapping[str, Provider], sleep: Sleep = asyncio.sleep) -> None:
        self.monitor = monitor
        self.providers = dict(providers)
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def start(self, *, now: bool = True) -> None:
        """Check each provider every interval; the first time at once, or after one interval."""
        if self._tasks:
            return
        for name, provider in self.providers.items():
            settings = self.monitor.config.for_provider(name)
            if settings.enabled:
                task = asyncio.create_task(self._loop(name, provider, now), name=f"llmmux-probe-{name}")
                self._tasks.append(task)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)

    async def check_all(self) -> None:
        """Check every provider once, now (the CLI's `llmmux health` without a server)."""
        await asyncio.gather(*(self._check(name, p) for name, p in self.providers.items()))

    async def _loop(self, name: str, provider: Provider, now: bool) -> None:
        if not now:
            await self._pause(name)
        while True:
            try:
                await self._check(name, provider)
            except Exception:  # a bug in one check must not end the schedule
                log.exception("health check of %s failed unexpectedly", name)
            await self._pause(name)

    async def _pause(self, name: str) -> None:
        interval = self.monitor.config.for_provider(name).interval_s
        await self._sleep(interval * (1 + random.uniform(-JITTER, JITTER)))

    async def _check(self, name: str, provider: Provider) -> None:
        record = await check(provider, self.monitor.config.for_provider(name), self._sleep)
        record.at = self.monitor.clock()
        self.monitor.probed(name, record)
