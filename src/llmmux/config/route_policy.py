"""How a route picks and falls back: strategy, fallback bounds and triggers, waiting, hedging.

    routing_strategy: lowest_latency          # the default strategy, or:
    routing_strategy:
      default: priority
      max_fallbacks: 3                        # candidates tried after the first, at most
      fallback_on: [rate_limited, timeout, server_error, 503, context_length]
      max_wait_seconds: 10                    # when every candidate is down, wait this long
      hedge: false                            # or true, or {after_ms: 800, percentile: 95}
      routes:
        chat-main: {strategy: lowest_latency, hedge: true}
        "capability:code": cost_optimized

Strategy names also accept the seeds' and LiteLLM's spellings (load_balance, fastest_response,
simple-shuffle, latency-based-routing, ...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..errors import ContextLengthExceeded, UpstreamClientError, UpstreamError, UpstreamServerError
from .cache_settings import CachePolicy, parse_policy
from .fields import FieldReader

STRATEGY_NAMES = (
    "priority",
    "weighted",
    "round_robin",
    "least_busy",
    "lowest_latency",
    "cost_optimized",
    "usage_based",
    "local_first",
    "quality",
    "complexity",
)
STRATEGY_ALIASES = {
    "ordered": "priority",
    "fallback": "priority",
    "primary": "priority",
    "load_balance": "weighted",
    "simple_shuffle": "weighted",
    "shuffle": "weighted",
    "random": "weighted",
    "round_robin": "round_robin",
    "least_busy": "least_busy",
    "least_connections": "least_busy",
    "fastest_response": "lowest_latency",
    "speed": "lowest_latency",
    "fastest": "lowest_latency",
    "latency_based_routing": "lowest_latency",
    "latency_based": "lowest_latency",
    "cost_based_routing": "cost_optimized",
    "cost_based": "cost_optimized",
    "cheapest": "cost_optimized",
    "usage_based_routing": "usage_based",
    "usage_based_routing_v2": "usage_based",
    "quality_based": "quality",
    "best_quality": "quality",
    "complexity_based": "complexity",
}

FALLBACK_KINDS = frozenset(
    {
        "rate_limited",
        "timeout",
        "server_error",
        "model_load_failed",
        "connect_error",
        "bad_response",
        "client_error",
        "content_filter",
        "context_length",
    }
)
_KIND_ALIASES = {
    "rate_limit": "rate_limited",
    "ratelimit": "rate_limited",
    "timeouts": "timeout",
    "stall": "timeout",
    "stalled": "timeout",
    "5xx": "server_error",
    "4xx": "client_error",
    "connection": "connect_error",
    "connect": "connect_error",
    "malformed": "bad_response",
    "context_length_exceeded": "context_length",
    "context_window": "context_length",
    "content_policy": "content_filter",
}
_CONTENT_FILTER_MARKERS = (b"content_filter", b"content_policy", b"content management policy")

DEFAULT_MAX_WAIT_S = 10.0
DEFAULT_HEDGE_AFTER_MS = 1000.0
DEFAULT_HEDGE_PERCENTILE = 95.0
DEFAULT_HEDGE_MIN_SAMPLES = 20


def strategy_name(raw: str) -> str | None:
    """The canonical name of a strategy spelling, or None when unknown."""
    key = raw.strip().lower().replace("-", "_").replace(" ", "_")
    return key if key in STRATEGY_NAMES else STRATEGY_ALIASES.get(key)


def error_tags(error: UpstreamError) -> set[str]:
    """The names a `fallback_on` list can match an error by: its kind, its parents' kinds and status."""
    tags = {error.kind}
    if isinstance(error, UpstreamServerError):
        tags.add("server_error")  # a local model that cannot load is a server error too
    if isinstance(error, ContextLengthExceeded):
        tags.add("context_length")
    if error.upstream_status is not None:
        tags.add(str(error.upstream_status))
    if isinstance(error, UpstreamClientError):
        tags.add("client_error")
        body = (error.body or b"").lower()
        if any(marker in body for marker in _CONTENT_FILTER_MARKERS):
            tags.add("content_filter")
    return tags


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Send to a second candidate when the first has no first token by its p95 latency."""

    after_ms: float = DEFAULT_HEDGE_AFTER_MS  # until enough samples make a percentile
    percentile: float = DEFAULT_HEDGE_PERCENTILE
    min_samples: int = DEFAULT_HEDGE_MIN_SAMPLES


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    strategy: str = "priority"
    max_fallbacks: int | None = None
    fallback_on: frozenset[str] | None = None  # None: every retryable error, and context length
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    hedge: HedgePolicy | None = None
    cache: CachePolicy | None = None  # the response cache; off unless configured

    def falls_back(self, error: UpstreamError) -> bool:
        """Should a failure of this kind move on to the next candidate?"""
        if self.fallback_on is None:
            return error.retryable or isinstance(error, ContextLengthExceeded)
        return not self.fallback_on.isdisjoint(error_tags(error))

    def describe(self) -> str:
        parts = [f"strategy {self.strategy}"]
        if self.max_fallbacks is not None:
            parts.append(f"max_fallbacks {self.max_fallbacks}")
        if self.fallback_on is not None:
            parts.append("fallback_on " + "/".join(sorted(self.fallback_on)))
        if self.hedge is not None:
            parts.append(f"hedge after p{self.hedge.percentile:g} (or {self.hedge.after_ms:g} ms)")
        parts.append(f"max_wait {self.max_wait_s:g} s")
        if self.cache is not None:
            parts.append(f"cache {self.cache.mode} ttl {self.cache.ttl_s:g} s")
        return ", ".join(parts)


DEFAULT_POLICY = RoutePolicy()
POLICY_KEYS = ("strategy", "max_fallbacks", "fallback_on", "max_wait_seconds", "hedge", "cache")


def policy_changes(entry: Any, path: str, reader: FieldReader) -> dict[str, Any]:
    """The RoutePolicy fields a mapping (or a bare strategy name) sets."""
    if isinstance(entry, str):
        entry = {"strategy": entry}
    mapping = reader.mapping(path, entry)
    if mapping is None:
        return {}
    changes: dict[str, Any] = {}
    if mapping.get("strategy") is not None:
        name = strategy_name(str(mapping["strategy"]))
        if name is None:
            reader.error(
                f"{path}.strategy",
                f"unknown strategy {mapping['strategy']!r}; expected one of " + ", ".join(STRATEGY_NAMES),
            )
        else:
            changes["strategy"] = name
    if mapping.get("max_fallbacks") is not None:
        bound = reader.integer(f"{path}.max_fallbacks", mapping["max_fallbacks"])
        if bound is not None:
            changes["max_fallbacks"] = bound
    if mapping.get("fallback_on") is not None:
        kinds = parse_fallback_on(mapping["fallback_on"], f"{path}.fallback_on", reader)
        if kinds is not None:
            changes["fallback_on"] = kinds
    if mapping.get("max_wait_seconds") is not None:
        wait = reader.number(f"{path}.max_wait_seconds", mapping["max_wait_seconds"])
        if wait is not None:
            changes["max_wait_s"] = wait
    if "hedge" in mapping:
        changes["hedge"] = parse_hedge(mapping["hedge"], f"{path}.hedge", reader)
    if "cache" in mapping:
        changes["cache"] = parse_policy(mapping["cache"], f"{path}.cache", reader)
    return changes


def parse_fallback_on(value: Any, path: str, reader: FieldReader) -> frozenset[str] | None:
    items = reader.strings(path, value)
    if items is None:
        return None
    kinds = set()
    for item in items:
        name = item.strip().lower()
        name = _KIND_ALIASES.get(name, name)
        if name in FALLBACK_KINDS or (name.isdigit() and 100 <= int(name) <= 599):
            kinds.add(name)
        else:
            reader.error(
                path,
                f"unknown error kind {item!r}; expected an HTTP status or one of " + ", ".join(sorted(FALLBACK_KINDS)),
            )
    return frozenset(kinds)


def parse_hedge(value: Any, path: str, reader: FieldReader) -> HedgePolicy | None:
    if value is None or value is False:
        return None
    if value is True:
        return HedgePolicy()
    entry = reader.mapping(path, value)
    if entry is None:
        return None
    reader.unknown(path, entry, ("after_ms", "percentile", "min_samples"))
    hedge = HedgePolicy()
    if entry.get("after_ms") is not None:
        after = reader.number(f"{path}.after_ms", entry["after_ms"], positive=True)
        hedge = dataclasses.replace(hedge, after_ms=after or hedge.after_ms)
    if entry.get("percentile") is not None:
        p = reader.number(f"{path}.percentile", entry["percentile"], positive=True)
        if p is not None and p <= 100:
            hedge = dataclasses.replace(hedge, percentile=p)
        elif p is not None:
            reader.error(f"{path}.percentile", f"expected a percentile up to 100, got {p:g}")
    if entry.get("min_samples") is not None:
        n = reader.integer(f"{path}.min_samples", entry["min_samples"], minimum=1)
        hedge = dataclasses.replace(hedge, min_samples=n or hedge.min_samples)
    return hedge
