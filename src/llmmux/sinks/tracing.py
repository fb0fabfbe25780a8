"""OpenTelemetry spans from events: a request's span and, under it, one span per attempt, laid
where each attempt really ran (`attempt_finished` carries its measured start and length).

Attempts wait here, by request id, until their request finishes; spans are made in batches,
off the request path. Without OpenTelemetry installed the sink is not built (and says why).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from ..config.model import Config
from ..events import AttemptRecord, RequestRecord
from . import Remove, Sink, Wiring

log = logging.getLogger("llmmux.tracing")

MAX_WAITING = 10_000
"""Requests whose attempts are held for their span; the oldest go first past it (their spans lose attempts)."""


class TracingSink(Sink):
    name = "tracing"

    def __init__(self, spans: Any) -> None:
        self.spans = spans  # a `tracing.Tracing`; tests may hand one with their own TracerProvider
        self.enabled = True
        self._attempts: OrderedDict[str, list[AttemptRecord]] = OrderedDict()

    def attach(self, wiring: Wiring) -> list[Remove]:
        return [wiring.events.on_attempt(self.attempted), wiring.batches.subscribe(self.record)]

    def reconfigure(self, config: Config) -> None:
        self.enabled = config.tracing.enabled

    def attempted(self, attempt: AttemptRecord) -> None:
        if not self.enabled:
            return
        waiting = self._attempts.get(attempt.request_id)
        if waiting is None:
            if len(self._attempts) >= MAX_WAITING:
                self._attempts.popitem(last=False)
            waiting = self._attempts[attempt.request_id] = []
        waiting.append(attempt)

    def record(self, batch: list[RequestRecord]) -> None:
        pop = self._attempts.pop
        for record in batch:
            attempts = pop(record.context.request_id, [])
            if self.enabled:
                self.spans.record(record, attempts)


def build(wiring: Wiring) -> TracingSink | None:
    if not wiring.router.config.tracing.enabled:
        return None
    try:
        from ..tracing import Tracing
    except ImportError:
        log.warning("tracing is enabled but OpenTelemetry is not installed: pip install 'llmmux[otel]'")
        return None
    router = wiring.router
    return TracingSink(Tracing(lambda: router.providers))
