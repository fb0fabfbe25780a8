"""Prometheus metrics from events: requests in flight, each finished request counted into its
cell (in batches), and each provider's health state as the `llmmux_provider_state` gauge."""

from __future__ import annotations

from ..cache import MemoryStore
from ..config.model import Config
from ..events import HealthChange, RequestRecord
from ..metrics import GatewayMetrics
from ..router import Router
from . import Remove, Sink, Wiring


class MetricsSink(Sink):
    name = "metrics"

    def __init__(self, metrics: GatewayMetrics, router: Router) -> None:
        self.metrics = metrics
        self.router = router
        self.count = router.config.metrics.enabled  # metrics: enabled: false stops counting and /metrics

    def attach(self, wiring: Wiring) -> list[Remove]:
        events = wiring.events
        self.metrics.before_read = wiring.batches.drain  # a scrape sees every request finished so far
        self.metrics.cache_size = self._cache_size
        for name in self.router.providers:  # every provider shows a state from the start
            self.metrics.set_provider_state(name, self.router.health.record(name).state)
        return [
            events.subscribe(self.started, start=True),
            events.subscribe(self.finished),
            events.on_health(self.health_changed),
            wiring.batches.subscribe(self.observe),
        ]

    def reconfigure(self, config: Config) -> None:
        self.count = config.metrics.enabled
        for name in self.router.providers:  # a provider added by the reload shows its state too
            if not any(key[0] == name for key in self.metrics.provider_state.values):
                self.metrics.set_provider_state(name, self.router.health.record(name).state)

    def _cache_size(self) -> tuple[int, int]:
        store = self.router.cache.store if self.router.cache is not None else None
        return store.size() if isinstance(store, MemoryStore) else (0, 0)

    def started(self, record: RequestRecord) -> None:
        if self.count:
            self.metrics.started(record)

    def finished(self, record: RequestRecord) -> None:
        if self.count:
            self.metrics.finished()

    def health_changed(self, change: HealthChange) -> None:
        self.metrics.set_provider_state(change.provider, change.new)

    def observe(self, batch: list[RequestRecord]) -> None:
        if not self.count:
            return
        shared = self.router.shared
        if shared is not None:
            self.metrics.shared_up.set((shared.kind,), 1.0 if shared.up else 0.0)
            self.metrics.shared_outages.values[(shared.kind,)] = float(shared.outages)
        observe = self.metrics.observe
        for record in batch:
            observe(record, record.cost_usd)

    async def start(self) -> None:
        await self.metrics.start()

    async def aclose(self) -> None:
        await self.metrics.aclose()


def build(wiring: Wiring) -> MetricsSink:
    return MetricsSink(wiring.metrics, wiring.router)
