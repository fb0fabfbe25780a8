"""Where finished requests go: each sink subscribes to the router's events on its own.

The pipeline publishes one priced `RequestRecord` per routed call (`request_finished`),
an `AttemptRecord` per try of a provider (`attempt_finished`) and a `HealthChange` per
provider transition (`health_changed`). A sink takes what it needs:

    ledger        a row per request, written in batches        (sinks/ledger.py)
    metrics       Prometheus counters, the provider-state gauge (sinks/metrics.py)
    request_log   a JSON line per request                      (sinks/request_log.py)
    tracing       OpenTelemetry spans, one per attempt          (sinks/tracing.py)
    key_spend     each virtual key's and team's spend, at once  (sinks/key_spend.py)
    bodies        prompts and replies for the console           (sinks/bodies.py)

On the request path a sink only counts or enqueues: work with I/O or real CPU subscribes to
`Batches`, which hands it the finished records every BATCH_INTERVAL_S, off the request path
(the same work in a tight loop runs with its code and data in cache). On a config reload
each sink's `reconfigure` gets the new config.

Adding a sink is one module with a `build(wiring) -> Sink | None` and one line in SINKS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..events import Events, RequestRecord
from ..tasks import cancel_and_wait

if TYPE_CHECKING:
    from ..config.model import Config
    from ..keys import KeyRing
    from ..ledger import Row, Store
    from ..masking import Masker
    from ..metrics import GatewayMetrics
    from ..router import Router

log = logging.getLogger("llmmux.sinks")

BATCH_INTERVAL_S = 0.1
Remove = Callable[[], None]
BatchSubscriber = Callable[[list[RequestRecord]], None]


class Batches:
    """`request_finished`, handed to its subscribers in batches: BATCH_INTERVAL_S after the
    first record of a batch. With nothing to hand on the task sleeps until a record comes (an
    idle gateway does not wake ten times a second for nothing).

    Without a running loop (a library user who never started the sinks) each record is handed
    on at once, so nothing waits for a task that does not exist.
    """

    def __init__(self, interval_s: float = BATCH_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._subscribers: list[BatchSubscriber] = []
        self._pending: list[RequestRecord] = []
        self._work = asyncio.Event()  # set by the first record of a batch
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, subscriber: BatchSubscriber) -> Remove:
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def add(self, record: RequestRecord) -> None:
        self._pending.append(record)
        if self._task is None:
            self.drain()
        elif len(self._pending) == 1:
            self._work.set()

    def drain(self) -> None:
        """Hand the records waiting to every subscriber (a metrics scrape calls this first)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        for subscriber in self._subscribers:
            try:
                subscriber(batch)
            except Exception:
                log.exception("sink %r failed on a batch of %d records", subscriber, len(batch))

    async def start(self) -> None:
        if self._task is None:
            self._work = asyncio.Event()  # this loop's
            self._task = asyncio.create_task(self._every_interval(), name="llmmux-sinks")

    async def _every_interval(self) -> None:
        while True:
            await self._work.wait()
            await asyncio.sleep(self.interval_s)  # what comes meanwhile joins the batch
            self._work.clear()
            self.drain()

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.drain()


@dataclass(slots=True)
class Wiring:
    """What sinks are built from: the router, its events, and the few shared parts of one gateway."""

    router: Router
    events: Events
    batches: Batches
    masker: Masker
    metrics: GatewayMetrics
    keys: KeyRing
    teams: KeyRing
    store: Store | None = None
    # The ledger's writer: told what it wrote (the key spend settles it), it takes turns on the
    # database with the key reloads (`db_turn`) and runs `after_flush` (a due key reload).
    on_written: list[Callable[[list[Row]], None]] = field(default_factory=list)
    after_flush: Callable[[], Awaitable[None]] | None = None
    db_turn: asyncio.Lock = field(default_factory=asyncio.Lock)


class Sink:
    """A subscriber to the router's events: `attach` subscribes, the rest is its own lifecycle."""

    name = "sink"

    def attach(self, wiring: Wiring) -> list[Remove]:
        """Subscribe to what it needs; returns the removers."""
        return []

    def reconfigure(self, config: Config) -> None:
        """The config was reloaded: take the new settings (the default: nothing to take)."""

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


SinkFactory = Callable[[Wiring], "Sink | None"]


def factories() -> list[SinkFactory]:
    """Every sink, in the order they hear of a finished request: one line per sink."""
    from . import bodies, key_spend, ledger, metrics, request_log, tracing

    return [key_spend.build, metrics.build, ledger.build, request_log.build, tracing.build, bodies.build]


__all__ = ["BATCH_INTERVAL_S", "Batches", "Sink", "Wiring", "factories"]
