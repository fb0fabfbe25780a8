"""The gateway's Prometheus metrics, fed by finished requests and served at `GET /metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path

from ..events import RequestRecord
from ..tasks import cancel_and_wait
from . import shared
from .labels import ModelLabels
from .registry import (
    LATENCY_BUCKETS,
    OVERHEAD_BUCKETS,
    Counter,
    Gauge,
    Histogram,
    Metric,
    render,
)

log = logging.getLogger("llmmux.metrics")

PROVIDER_STATES = ("active", "degraded", "unavailable", "cooldown", "drained")
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

__all__ = ["CONTENT_TYPE", "PROVIDER_STATES", "GatewayMetrics"]


class GatewayMetrics:
    """Counts every finished request; with `folder` set, merges all workers' numbers on render.

    >>> metrics = GatewayMetrics()
    >>> router.events.subscribe(lambda r: metrics.observe(r, r.cost_usd))   # doctest: +SKIP
    >>> metrics.set_provider_state("ollama", "unavailable")
    """

    def __init__(self, folder: Path | None = None, snapshot_interval_s: float = 1.0) -> None:
        self.folder = folder
        self.snapshot_interval_s = snapshot_interval_s
        self._task: asyncio.Task[None] | None = None
        self._written: dict[str, list[tuple[list[str], object]]] | None = None  # what its snapshot file holds
        self.requests = Counter(
            "llmmux_requests_total",
            "Requests finished, by public model, provider that answered and HTTP status.",
            ("model", "provider", "status"),
        )
        self.latency = Histogram(
            "llmmux_request_duration_seconds", "Time from request received to last byte.", ("model", "provider")
        )
        self.ttft = Histogram(
            "llmmux_time_to_first_token_seconds",
            "Streams: time from request received to first chunk.",
            ("model", "provider"),
        )
        self.overhead = Histogram(
            "llmmux_overhead_seconds",
            "Time llmmux spent that was not waiting on an upstream (streams: before the first chunk).",
            ("stream",),
            OVERHEAD_BUCKETS,
        )
        self.tokens = Counter(
            "llmmux_tokens_total",
            "Tokens by kind (prompt, completion, cached, reasoning); estimated ones too.",
            ("model", "provider", "kind"),
        )
        self.cost = Counter(
            "llmmux_cost_usd_total",
            "USD spent, from reported (or estimated) usage and the price table.",
            ("model", "provider"),
        )
        self.fallbacks = Counter(
            "llmmux_fallbacks_total", "Requests that moved on to another candidate, counted per move.", ("model",)
        )
        self.retries = Counter(
            "llmmux_retries_total", "Repeated attempts at the same candidate.", ("model", "provider")
        )
        self.attempts = Counter(
            "llmmux_upstream_attempts_total",
            "Upstream attempts by provider and outcome (ok or error kind).",
            ("provider", "outcome"),
        )
        self.in_flight = Gauge("llmmux_in_flight_requests", "Requests being served now.")
        self.provider_state = Gauge(
            "llmmux_provider_state",
            "1 for each provider's current health state, 0 for the others.",
            ("provider", "state"),
            merge="latest",
        )
        self.ledger_dropped = Counter(
            "llmmux_ledger_dropped_total", "Ledger records dropped because the database stayed unreachable."
        )
        self.shared_up = Gauge(
            "llmmux_shared_state_up",
            "1 while the shared state (Redis, or the workers' holder) answers, per process.",
            ("store",),
            merge="sum",
        )
        self.shared_outages = Counter(
            "llmmux_shared_state_outages_total",
            "Times the shared state went out of reach (limits then fall back to per-instance shares).",
            ("store",),
        )
        self.cache_lookups = Counter(
            "llmmux_cache_lookups_total",
            "Response cache lookups by public model and result (hit, semantic-hit, miss, refresh, bypass).",
            ("model", "result"),
        )
        self.cache_saved = Counter(
            "llmmux_cache_saved_usd_total",
            "USD the response cache saved: what its hits cost when first made.",
            ("model",),
        )
        self.cache_score = Histogram(
            "llmmux_cache_semantic_score", "Similarity of semantic cache hits.", ("model",), SCORE_BUCKETS
        )
        self.cache_bytes = Gauge(
            "llmmux_cache_bytes", "Bytes of answers in the response cache's in-process store.", merge="sum"
        )
        self.cache_entries = Gauge("llmmux_cache_entries", "Answers in the response cache's in-process store.")
        self.cache_size: Callable[[], tuple[int, int]] | None = None  # (entries, bytes), set by accounting
        self._cells: dict[tuple[str, str, int, bool], _Cell] = {}
        self.model_labels = ModelLabels()  # the accounting tells it which names route
        self.before_read: Callable[[], None] | None = None  # the accounting's drain, so reads are current
        self._in_flight = 0
        self.all: tuple[Metric, ...] = (
            self.requests,
            self.latency,
            self.ttft,
            self.overhead,
            self.tokens,
            self.cost,
            self.fallbacks,
            self.retries,
            self.attempts,
            self.in_flight,
            self.provider_state,
            self.ledger_dropped,
            self.shared_up,
            self.shared_outages,
            self.cache_lookups,
            self.cache_saved,
            self.cache_score,
            self.cache_bytes,
            self.cache_entries,
        )

    # -- the hot path: one dict lookup and a few list updates per request --

    def started(self, record: RequestRecord) -> None:
        self._in_flight += 1

    def finished(self) -> None:
        self._in_flight -= 1

    def observe(self, record: RequestRecord, cost: float) -> None:
        """Count a finished request into its cell; `_fold` moves cells into the families when read."""
        provider = record.provider or ""
        model = self.model_labels.label(record)
        key = (model, provider, record.status, record.stream)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        cell.requests += 1
        _bucket(cell.latency, LATENCY_BOUNDS, record.latency_ms / 1000)
        if record.stream:
            if record.ttft_ms is not None:
                _bucket(cell.ttft, LATENCY_BOUNDS, record.ttft_ms / 1000)
                _bucket(cell.overhead, OVERHEAD_BOUNDS, max(record.ttft_ms - record.upstream_ms, 0.0) / 1000)
        elif provider:
            _bucket(cell.overhead, OVERHEAD_BOUNDS, max(record.latency_ms - record.upstream_ms, 0.0) / 1000)
        usage = record.usage
        if usage is not None:
            cell.prompt += usage.prompt_tokens
            cell.completion += usage.completion_tokens
            cell.cached += usage.cached_tokens
            cell.reasoning += usage.reasoning_tokens
        cell.cost += cost
        if record.cache is not None:
            self._cache(record, model)
        elif record.attempts:
            self._attempts(record, model)
        elif provider:
            cell.answered += 1

    def _cache(self, record: RequestRecord, model: str) -> None:
        self.cache_lookups.inc((model, record.cache or ""))
        if record.cache_source is not None:
            if record.saved_usd:
                self.cache_saved.inc((model,), record.saved_usd)
            if record.cache_score is not None:
                self.cache_score.observe((model,), record.cache_score)
            return  # a hit made no upstream attempt
        if record.attempts:
            self._attempts(record, model)
        elif record.provider:
            self._cells[(model, record.provider, record.status, record.stream)].answered += 1

    def _fold(self) -> None:
        """Move what the cells counted into the families (before a scrape or a snapshot)."""
        if self.before_read is not None:
            self.before_read()
        self.in_flight.set((), float(self._in_flight))
        if self.cache_size is not None:
            entries, size = self.cache_size()
            self.cache_entries.set((), float(entries))
            self.cache_bytes.set((), float(size))
        cells, self._cells = self._cells, {}
        for (model, provider, status, stream), cell in cells.items():
            self.requests.inc((model, provider, str(status)), cell.requests)
            _add_row(self.latency, (model, provider), cell.latency)
            _add_row(self.ttft, (model, provider), cell.ttft)
            _add_row(self.overhead, ("true" if stream else "false",), cell.overhead)
            for kind, count in (
                ("prompt", cell.prompt),
                ("completion", cell.completion),
                ("cached", cell.cached),
                ("reasoning", cell.reasoning),
            ):
                if count:
                    self.tokens.inc((model, provider, kind), count)
            if cell.cost:
                self.cost.inc((model, provider), cell.cost)
            if cell.answered:
                self.attempts.inc((provider, "ok"), cell.answered)

    def _attempts(self, record: RequestRecord, model: str) -> None:
        """Requests with failed attempts (the rare case) count fallbacks and retries directly."""
        previous: tuple[str, str] | None = None
        for attempt in record.attempts:
            current = (attempt.provider, attempt.model)
            self._step(model, previous, current)
            self.attempts.inc((attempt.provider, attempt.error.kind))
            previous = current
        if record.provider is not None and record.model is not None:
            self._step(model, previous, (record.provider, record.model))
            self.attempts.inc((record.provider, "ok"))

    def _step(self, model: str, previous: tuple[str, str] | None, current: tuple[str, str]) -> None:
        if previous is None:
            return
        if previous == current:
            self.retries.inc((model, current[0]))
        else:
            self.fallbacks.inc((model,))

    def set_provider_state(self, provider: str, state: str) -> None:
        """Record a provider's health state (one of PROVIDER_STATES); the metrics sink calls this on health_changed."""
        for known in PROVIDER_STATES:
            self.provider_state.set((provider, known), 1.0 if known == state else 0.0)

    # -- scraping and sharing --

    def render(self) -> str:
        self._fold()
        if self.folder is None:
            return render(self.all)
        live = shared.take(self.all)
        others = shared.read_all(self.folder, skip_pid=live.pid)
        return render(self.all, shared.merge(self.all, live, others))

    def write_snapshot(self) -> None:
        self._fold()
        if self.folder is None:
            return
        snapshot = shared.take(self.all)
        if snapshot.families == self._written:
            return  # nothing counted since the last one: its file says it already (no write a second when idle)
        shared.write(self.folder, snapshot)
        self._written = snapshot.families

    async def start(self) -> None:
        if self.folder is not None and self._task is None:
            self._task = asyncio.create_task(self._snapshots(), name="llmmux-metrics-snapshots")

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_interval_s)
            try:
                self.write_snapshot()
            except OSError as exc:
                log.warning("cannot write metrics snapshot to %s: %s", self.folder, exc)

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(OSError):
            self.write_snapshot()  # the last numbers of a stopping worker still count


SCORE_BUCKETS = (0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0)
LATENCY_BOUNDS = LATENCY_BUCKETS
OVERHEAD_BOUNDS = OVERHEAD_BUCKETS


class _Cell:
    """Everything counted for one (model, provider, status, stream) since the last fold."""

    __slots__ = (
        "answered",
        "cached",
        "completion",
        "cost",
        "latency",
        "overhead",
        "prompt",
        "reasoning",
        "requests",
        "ttft",
    )

    def __init__(self) -> None:
        self.requests = self.answered = 0
        self.prompt = self.completion = self.cached = self.reasoning = 0
        self.cost = 0.0
        self.latency = [0.0] * (len(LATENCY_BOUNDS) + 3)  # buckets, +Inf, sum, count: Histogram's layout
        self.ttft = [0.0] * (len(LATENCY_BOUNDS) + 3)
        self.overhead = [0.0] * (len(OVERHEAD_BOUNDS) + 3)


def _bucket(row: list[float], bounds: tuple[float, ...], value: float) -> None:
    row[bisect_left(bounds, value)] += 1
    row[-2] += value
    row[-1] += 1


def _add_row(histogram: Histogram, key: tuple[str, ...], row: list[float]) -> None:
    if not row[-1]:
        return
    current = histogram.values.get(key)
    histogram.values[key] = row if current is None else [a + b for a, b in zip(current, row)]
