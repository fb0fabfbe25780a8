"""Every provider's health, in one place: fed by probes and by real traffic, read by routing.

The pipeline asks `admit()` before each attempt and reports how it ended; the prober
reports health checks. Transitions are logged and counted, and wake the requests that
wait for a provider to come back.

With a shared store, every change that matters to the breaker (a state change, a failure
streak growing or reset, a half-open trial taken or settled) is published to the other
workers and instances, which adopt the record: a backend one instance ejects is skipped
by all within the publish latency. Failures in a row are counted atomically in the store
(`streak`), so concurrent failures on several instances add up instead of overwriting each
other's records: a failing backend gets at most the threshold plus the requests already in
flight before every instance skips it. Successes on a healthy provider publish nothing, so
the hot path stays local.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import msgspec

from ..config.health_checks import HealthConfig
from ..errors import ModelLoadFailed, NotSupported, UpstreamClientError, UpstreamError
from ..events import HealthChange
from ..shared.client import Shared, SharedDown
from ..state import Clock, InMemoryState, Signal, State, monotonic
from .breaker import ROUTABLE, Admission, HealthPolicy, HealthRecord, ProbeRecord, Transition

log = logging.getLogger("llmmux.health")

TRANSITIONS = "health.transitions."
CHANNEL = "health"


class HealthMonitor:
    """Health of every provider by name; survives config reloads (it is keyed by name).

    >>> monitor = HealthMonitor()
    >>> monitor.admit("ollama")
    <Admission.ADMIT: 'admit'>
    """

    def __init__(
        self,
        config: HealthConfig | None = None,
        state: State | None = None,
        clock: Clock = monotonic,
        *,
        shared: Shared | None = None,
    ) -> None:
        self.state: State = state if state is not None else InMemoryState()
        self.clock = clock
        self.changed = Signal()
        # Told of every state transition, this instance's or adopted from another (`health_changed`).
        self.on_transition: Callable[[HealthChange], None] | None = None
        self._policies: dict[str, HealthPolicy] = {}
        self.shared = shared
        self._publishing: set[asyncio.Task[None]] = set()
        if shared is not None:
            shared.listen(CHANNEL, self._adopt)
        self.configure(config or HealthConfig())

    def configure(self, config: HealthConfig) -> None:
        """New settings (after a reload); records and their history are kept."""
        self.config = config
        self._policies = {}

    def policy(self, name: str) -> HealthPolicy:
        policy = self._policies.get(name)
        if policy is None:
            policy = self._policies[name] = HealthPolicy(self.config.for_provider(name))
        return policy

    def record(self, name: str) -> HealthRecord:
        record = self.state.get(HealthRecord, name)
        if record is None:
            record = HealthRecord(since=self.clock())
            self.state.put(name, record)
        return record

    # -- routing: the hot path, a dict lookup when all is well --

    def routable(self, name: str) -> bool:
        record = self.state.get(HealthRecord, name)
        return record is None or HealthPolicy.routable(record, self.clock())

    def admit(self, name: str) -> Admission:
        record = self.state.get(HealthRecord, name)
        if record is None:
            return Admission.ADMIT
        admission = self.policy(name).admit(record, self.clock())
        if admission is Admission.TRIAL:
            self.state.put(name, record)
            self._share(name, record)
            log.info("provider %s: half-open, letting one trial request through", name)
        return admission

    def retry_in(self, name: str) -> float | None:
        """Seconds until a provider that is out may take a trial request; None when routable."""
        record = self.state.get(HealthRecord, name)
        if record is None or HealthPolicy.routable(record, self.clock()):
            return None
        return max(0.0, record.retry_at - self.clock())

    # -- reports --

    def succeeded(
        self, name: str, *, latency_ms: float | None = None, ttft_ms: float | None = None, trial: bool = False
    ) -> None:
        record = self.record(name)
        before = _breaker(record)
        if record.consecutive_failures and self.shared is not None:
            self._track(self.shared.call(self.shared.store.streak(name, False)))
        self._apply(
            name,
            record,
            self.policy(name).succeeded(record, self.clock(), latency_ms=latency_ms, ttft_ms=ttft_ms, trial=trial),
            before,
        )

    def failed(self, name: str, error: UpstreamError | str, *, trial: bool = False) -> None:
        """An attempt failed; only failures that say the provider is in trouble count."""
        record = self.record(name)
        if isinstance(error, ModelLoadFailed):
            return  # one broken model file: the provider's other models still serve
        if isinstance(error, UpstreamClientError | NotSupported):
            # The upstream answered, or cannot serve this kind of request (embeddings from a
            # chat model): the request was at fault, not the provider.
            if trial:
                self.succeeded(name, trial=True)
            return
        retry_after = error.retry_after if isinstance(error, UpstreamError) and error.kind == "rate_limited" else None
        message = error.message if isinstance(error, UpstreamError) else error
        if self.shared is not None and not trial and retry_after is None and record.state in ROUTABLE:
            self._track(self._count_failure(name, message))
            return
        self._count(name, record, message, retry_after, trial)

    async def _count_failure(self, name: str, message: str) -> None:
        """A failure in a row, counted with every other instance's (the local count if the store is out)."""
        assert self.shared is not None
        streak = None
        try:
            streak = await self.shared.call(self.shared.store.streak(name, True))
        except SharedDown:
            pass
        record = self.record(name)
        if streak is not None and record.state in ROUTABLE:
            record.consecutive_failures = max(record.consecutive_failures, streak - 1)
        self._count(name, record, message, None, False)

    def _count(self, name: str, record: HealthRecord, message: str, retry_after: float | None, trial: bool) -> None:
        before = _breaker(record)
        self._apply(
            name,
            record,
            self.policy(name).failed(record, self.clock(), error=message, retry_after=retry_after, trial=trial),
            before,
        )

    def released(self, name: str, *, trial: bool) -> None:
        """An attempt ended without a verdict (cancelled); frees a half-open trial."""
        if trial:
            record = self.record(name)
            HealthPolicy.released(record)
            self.state.put(name, record)
            self._share(name, record)
            self.changed.notify()

    def probed(self, name: str, probe: ProbeRecord) -> None:
        record = self.record(name)
        before = _breaker(record)
        self._apply(name, record, self.policy(name).probed(record, self.clock(), probe), before)

    def take_out(self, name: str, reason: str = "taken out of rotation by an operator") -> None:
        """No request goes to `name` until `put_back`; probes still run and are shown."""
        record = self.record(name)
        self._apply(name, record, self.policy(name).drain(record, self.clock(), reason))

    def put_back(self, name: str) -> None:
        record = self.record(name)
        self._apply(name, record, self.policy(name).restore(record, self.clock()))

    def _apply(
        self, name: str, record: HealthRecord, transition: Transition | None, before: tuple[Any, ...] = ()
    ) -> None:
        self.state.put(name, record)
        if self.shared is not None and _breaker(record) != before:
            self._share(name, record)
        if transition is None:
            return
        self.state.add(f"{TRANSITIONS}{name}.{transition.old}->{transition.new}")
        level = logging.INFO if transition.new in ("active", "degraded") else logging.WARNING
        log.log(level, "provider %s: %s -> %s (%s)", name, transition.old, transition.new, transition.reason)
        if self.on_transition is not None:
            self.on_transition(HealthChange(name, transition.old, transition.new, transition.reason))
        self.changed.notify()

    # -- sharing --

    def _share(self, name: str, record: HealthRecord) -> None:
        if self.shared is not None:
            # Monotonic clocks differ between machines: send ours with the wall clock, to translate.
            payload = msgspec.msgpack.encode([name, record, self.clock(), time.time()])
            task = self.shared.publish(CHANNEL, payload)
            if task is not None:
                self._publishing.add(task)
                task.add_done_callback(self._publishing.discard)

    def _track(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run shared work that `published()` waits for (a failure counted, a streak ended)."""
        task = asyncio.ensure_future(self._quietly(work))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    @staticmethod
    async def _quietly(work: Coroutine[Any, Any, Any]) -> None:
        with contextlib.suppress(SharedDown):
            await work

    async def published(self) -> None:
        """Wait until the changes reported so far have reached the shared store.

        The pipeline waits here after a failed attempt, so the other instances know of the
        failure before this request goes on (and its client sends the next one).
        """
        for _ in range(3):  # a failure counted may publish the trip it caused: wait for that too
            if not self._publishing:
                return
            await asyncio.wait(list(self._publishing))

    def _adopt(self, sender: str, payload: bytes) -> None:
        """Another worker or instance changed a provider's breaker: take its record as ours."""
        if self.shared is None or sender == self.shared.instance:
            return
        name, raw, their_clock, their_wall = msgspec.msgpack.decode(payload)
        record = msgspec.convert(raw, HealthRecord)
        shift_times(record, (their_wall - their_clock) - (time.time() - self.clock()))
        old = self.state.get(HealthRecord, name)
        if old is not None and old.state not in ROUTABLE and record.state in ROUTABLE and record.since <= old.since:
            return  # news from before the trip we know of (a failure counted there meanwhile), not a recovery
        self.state.put(name, record)
        if old is None or old.state != record.state:
            level = logging.INFO if record.state in ("active", "degraded") else logging.WARNING
            was = old.state if old is not None else "active"
            log.log(level, "provider %s: %s -> %s (%s; seen by %s)", name, was, record.state, record.reason, sender)
            if self.on_transition is not None:
                self.on_transition(HealthChange(name, was, record.state, record.reason, seen_by=sender))
        self.changed.notify()

    # -- reporting --

    def transitions(self, name: str) -> dict[str, int]:
        prefix = f"{TRANSITIONS}{name}."
        return {k.removeprefix(prefix): v for k, v in self.state.counters(prefix).items()}

    def snapshot(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """What `GET /health/providers` and `llmmux health` show, one dict per provider."""
        now = self.clock()
        return [self._describe(name, self.record(name), now) for name in names]

    def _describe(self, name: str, record: HealthRecord, now: float) -> dict[str, Any]:
        settings = self.config.for_provider(name)
        requests, failures = record.window.totals(now=now, span=settings.window_s)
        probe = record.last_probe
        return {
            "name": name,
            "state": record.state,
            "routable": HealthPolicy.routable(record, now),
            "reason": record.reason,
            "since_s": round(now - record.since, 1),
            "retry_in_s": round(max(0.0, record.retry_at - now), 1)
            if record.state not in ("active", "degraded")
            else None,
            "latency_ms": _round(record.latency_ms),
            "ttft_ms": _round(record.ttft_ms),
            "error_rate": round(failures / requests, 3) if requests else None,
            "requests": requests,
            "consecutive_failures": record.consecutive_failures,
            "last_error": record.last_error or None,
            "last_probe": None
            if probe is None
            else {
                "ok": probe.ok,
                "age_s": round(now - probe.at, 1),
                "latency_ms": _round(probe.latency_ms),
                "status": probe.status,
                "detail": probe.detail or None,
                "attempts": probe.attempts,
            },
            "transitions": self.transitions(name),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _breaker(record: HealthRecord) -> tuple[Any, ...]:
    """What the other instances must know at once; latency and counts may lag."""
    return (record.state, record.consecutive_failures, record.trial, record.retry_at)


def shift_times(record: HealthRecord, delta: float) -> None:
    """Move a record's moments from another process's monotonic clock onto ours."""
    record.since += delta
    record.retry_at += delta
    record.trial_started += delta
    record.window.starts = [start + delta for start in record.window.starts]
    if record.last_probe is not None:
        record.last_probe.at += delta
