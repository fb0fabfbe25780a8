"""Counters, gauges and histograms kept as plain dicts, and the Prometheus text format.

Hand-rolled rather than prometheus-client for two reasons: an observation here is a
dict update (a few hundred nanoseconds) where the client's multiprocess mode writes to
an mmap under a lock, and the state is a plain structure that a worker can snapshot to a
file, so `/metrics` can merge every worker's numbers (see `shared`).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Literal

Labels = tuple[str, ...]
GaugeMerge = Literal["sum", "latest"]

# Seconds: from a cached local reply to a long generation.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# llmmux's own time per request: sub-millisecond when all is well.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class Family:
    """One metric name with its label names; `values` maps label values to the number(s)."""

    kind = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help
        self.labels: Labels = tuple(labels)
        self.values: dict[Labels, float] = {}

    def samples(self, values: dict[Labels, float]) -> Iterable[str]:
        for key, value in values.items():
            yield f"{self.name}{_labels(self.labels, key)} {_number(value)}"


class Counter(Family):
    kind = "counter"

    def inc(self, key: Labels = (), amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount


class Gauge(Family):
    """A value that goes up and down. `merge` says how workers combine: add up, or newest wins."""

    kind = "gauge"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), merge: GaugeMerge = "sum") -> None:
        super().__init__(name, help, labels)
        self.merge = merge

    def set(self, key: Labels, value: float) -> None:
        self.values[key] = value

    def inc(self, key: Labels = (), amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount


class Histogram:
    """Bucket counts (not cumulative) plus sum and count, per label values."""

    kind = "histogram"

    def __init__(
        self, name: str, help: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> None:
        self.name = name
        self.help = help
        self.labels: Labels = tuple(labels)
        self.bounds = tuple(buckets)
        self.values: dict[Labels, list[float]] = {}

    def observe(self, key: Labels, value: float) -> None:
        row = self.values.get(key)
        if row is None:
            row = self.values[key] = [0.0] * (len(self.bounds) + 3)
        row[bisect_left(self.bounds, value)] += 1  # le is inclusive: value == bound lands in that bucket
        row[-2] += value
        row[-1] += 1

    def samples(self, values: dict[Labels, list[float]]) -> Iterable[str]:
        for key, row in values.items():
            running = 0.0
            for bound, count in zip((*self.bounds, math.inf), row[:-2]):
                running += count
                le = "+Inf" if bound == math.inf else _number(bound)
                yield f"{self.name}_bucket{_labels((*self.labels, 'le'), (*key, le))} {_number(running)}"
            yield f"{self.name}_sum{_labels(self.labels, key)} {_number(row[-2])}"
            yield f"{self.name}_count{_labels(self.labels, key)} {_number(row[-1])}"


Metric = Counter | Gauge | Histogram


def render(metrics: Iterable[Metric], merged: dict[str, dict[Labels, object]] | None = None) -> str:
    """The Prometheus text exposition format (0.0.4) of `metrics`, or of `merged` values for them."""
    lines: list[str] = []
    for metric in metrics:
        values = merged[metric.name] if merged is not None else metric.values
        lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        lines.extend(metric.samples(values))  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


def _labels(names: Labels, values: Labels) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values)) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
