"""What happened: the events the pipeline and the health monitor publish, and their records.

    request started     `Events.start`          a RequestRecord, when a request enters the pipeline
    attempt_finished    `Events.attempt`        an AttemptRecord per try of a provider, measured
    request_finished    `Events.publish`        the RequestRecord, priced, exactly once per started request
    health_changed      `Events.health_changed` a HealthChange per provider state transition

Subscribers run on the request path, synchronously: they must only count or enqueue and
do their I/O elsewhere (`llmmux.sinks` hands records to the slow ones in batches). A
subscriber that raises is logged and skipped, never allowed to fail the request.

One hook may refuse a request before it is routed, or narrow where it may go: `admit`
(virtual keys' allow-lists, budgets and rate limits). All of it lives on the router's one
Events object, so it outlives the pipelines a config reload replaces.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import Attempt, LLMMuxError, UpstreamError
from .types import ChatRequest, ChatResponse, EmbeddingRequest, Usage

log = logging.getLogger("llmmux.events")


def new_request_id() -> str:
    """24 hex digits: milliseconds since the epoch (48 bits), then 48 random bits.

    Ids that grow with time sort like the requests did, and the ledger's unique index on
    them takes each new row at its end instead of at a random page: at millions of rows
    that is the difference between an append and a page read per insert.
    """
    return f"{time.time_ns() // 1_000_000:012x}{_id_bits(48):012x}"


def _reseed_id_bits() -> None:
    """Seed this process's id generator from the OS, once and again in every forked child.

    os.urandom per request is a system call (about 1.6% of a busy worker's CPU). Ids name
    requests but grant nothing, so they need to be unique, not secret: 128 seed bits from
    the OS per process make a collision between processes as unlikely as before. A forked
    worker would otherwise inherit its parent's state and draw the same ids as its siblings.
    """
    global _id_bits
    _id_bits = random.Random(os.urandom(16)).getrandbits


_id_bits: Callable[[int], int]
_reseed_id_bits()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed_id_bits)


class ClientApi(enum.StrEnum):
    """Which API a request came in through: its ledger column, log field and trace attribute."""

    LIBRARY = "library"  # `Router` called from Python
    OPENAI = "openai"  # /v1/chat/completions, /v1/embeddings
    COMPLETIONS = "openai_completions"  # the legacy /v1/completions
    RESPONSES = "openai_responses"  # /v1/responses
    ANTHROPIC = "anthropic"  # /v1/messages
    OLLAMA = "ollama"  # /api/...
    CONSOLE = "console"  # the console's (and admin API's) "try a prompt"
    CACHE = "cache"  # the semantic cache embedding a prompt


@dataclass(slots=True)
class CallContext:
    """Who is asking and how: set by the front door (or the library) before routing."""

    request_id: str = field(default_factory=new_request_id)
    client_api: ClientApi = ClientApi.LIBRARY
    key_id: str | None = None
    started: float = field(default_factory=time.time)
    started_perf: float = field(default_factory=time.perf_counter)
    parent_id: str | None = None  # the client's request, when it fans out into several routed calls
    # The client's headers as the server got them (a reference, not a copy): a provider passes
    # on those on its `forward_headers`, and body logging shows them, masked.
    headers: list[tuple[bytes, bytes]] | None = None
    query: str = ""
    body: bytes | None = None  # the request body as the client sent it (likewise a reference)
    method: str | None = None  # the HTTP method and path a front door was called with (None: the library)
    path: str | None = None
    cache_directive: str | None = None  # "skip", "refresh" or "no-store", from the request's headers
    # Set at admission (`llmmux.tags`, `llmmux.enduser`): what the request is for, and for whom.
    tags: tuple[str, ...] = ()
    end_user: str | None = None
    team_id: str | None = None  # the key's team when the request was made

    def child(self, index: int) -> CallContext:
        """The context of routed call `index` (from 1) of a request that makes several: its own
        record and ledger row, tied to the client's request id by `parent_id`."""
        return dataclasses.replace(self, request_id=f"{self.request_id}-{index}", parent_id=self.request_id)


@dataclass(slots=True)
class RequestRecord:
    """One finished request: the ledger's row, the metrics' sample, the log line."""

    context: CallContext
    public_model: str
    stream: bool
    provider: str | None = None
    model: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    status: int = 200
    error_kind: str | None = None
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    upstream_ms: float = 0.0
    # What accounting needs when the backend reports no usage, and for body logging.
    request: ChatRequest | None = None
    response: ChatResponse | None = None
    output_chars: int = 0
    output: list[str] | None = None  # streamed text, collected only when a subscriber asks at start
    cost_usd: float = 0.0  # set by accounting, so the ledger, metrics and logs agree
    # The response cache: "hit", "semantic-hit", "miss" or "bypass" on a route that caches.
    cache: str | None = None
    cache_score: float | None = None  # semantic hits: the similarity
    cache_source: str | None = None  # hits: the request whose answer was served
    cache_usage: Usage | None = None  # hits: what the answer took when it was made, priced as saved
    saved_usd: float = 0.0  # hits: set by accounting

    @property
    def fallbacks(self) -> int:
        return len({a.provider for a in self.attempts} - {self.provider})


@dataclass(slots=True)
class AttemptRecord:
    """One try of one provider, finished: published as `attempt_finished`, success or not.

    Its start and duration are measured, not reconstructed, so a trace lays its spans where
    the attempts really ran (retries' waits and hedged pairs included).
    """

    request_id: str
    provider: str
    model: str
    started: float  # wall-clock seconds
    elapsed_ms: float
    status: int = 200
    error_kind: str | None = None
    error_message: str | None = None

    @classmethod
    def of(
        cls, record: RequestRecord, started: float, elapsed_ms: float, error: UpstreamError | None = None
    ) -> AttemptRecord:
        """The attempt `record` made on its provider, started at wall-clock `started`."""
        return cls(
            record.context.request_id,
            record.provider or "",
            record.model or "",
            started,
            elapsed_ms,
            record.status if error is None else error.status,
            record.error_kind if error is None else error.kind,
            None if error is None else error.message,
        )


@dataclass(frozen=True, slots=True)
class HealthChange:
    """A provider's health moved from one state to another (`health_changed`): active, degraded,
    cooldown, unavailable or draining; `seen_by` names the instance that saw it, if not this one."""

    provider: str
    old: str
    new: str
    reason: str
    seen_by: str | None = None


class AllowList(Protocol):
    """Which routed candidates a caller may use, judged by the names each goes by (a virtual key)."""

    def allows_any(self, names: Iterable[str]) -> bool: ...

    def refusal(self, model: str) -> LLMMuxError: ...


Subscriber = Callable[[RequestRecord], None]
AttemptSubscriber = Callable[[AttemptRecord], None]
HealthSubscriber = Callable[[HealthChange], None]
Admit = Callable[[ChatRequest | EmbeddingRequest, CallContext], "AllowList | Awaitable[AllowList | None] | None"]
"""Refuses a request by raising, else says what it may be routed to (None: anywhere); an
awaitable when it must ask a shared store (keys' limits across instances)."""


class Events:
    """What happened, for whoever listens; each sink subscribes on its own.

        events.subscribe(fn)                 # request_finished: one priced RequestRecord per routed call
        events.subscribe(fn, start=True)     # request started (in-flight gauges, body capture)
        events.on_attempt(fn)                # attempt_finished: every try of every provider
        events.on_health(fn)                 # health_changed: a provider's state moved
        events.on_reload(fn)                 # the router switched to a reloaded config

    Each returns its remover.
    """

    __slots__ = ("_attempts", "_health", "_reloads", "_starters", "_subscribers", "admit")

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._starters: list[Subscriber] = []
        self._attempts: list[AttemptSubscriber] = []
        self._health: list[HealthSubscriber] = []
        self._reloads: list[Callable[[Any], None]] = []
        self.admit: Admit | None = None  # refuses a request (raises), or limits where it may go

    def subscribe(self, subscriber: Subscriber, *, start: bool = False) -> Callable[[], None]:
        """Add a subscriber to finished requests (or, with `start`, to starting ones); returns its remover."""
        return _added(self._starters if start else self._subscribers, subscriber)

    def on_attempt(self, subscriber: AttemptSubscriber) -> Callable[[], None]:
        return _added(self._attempts, subscriber)

    def on_health(self, subscriber: HealthSubscriber) -> Callable[[], None]:
        return _added(self._health, subscriber)

    def on_reload(self, subscriber: Callable[[Any], None]) -> Callable[[], None]:
        """Told of each config the router switches to (a `Config`): sinks take their new settings."""
        return _added(self._reloads, subscriber)

    @property
    def wants_attempts(self) -> bool:
        """Whether anyone listens to attempts: the pipeline builds no AttemptRecord otherwise."""
        return bool(self._attempts)

    def start(self, record: RequestRecord) -> None:
        _call(self._starters, record)

    def publish(self, record: RequestRecord) -> None:
        """`request_finished`: exactly once per started request."""
        _call(self._subscribers, record)

    def attempt(self, attempt: AttemptRecord) -> None:
        _call(self._attempts, attempt)

    def health_changed(self, change: HealthChange) -> None:
        _call(self._health, change)

    def reloaded(self, config: object) -> None:
        _call(self._reloads, config)


def _added(target: list[Any], subscriber: Any) -> Callable[[], None]:
    target.append(subscriber)
    return lambda: target.remove(subscriber)


def _call(subscribers: list[Any], event: object) -> None:
    for subscriber in subscribers:
        try:
            subscriber(event)
        except Exception:
            log.exception("event subscriber %r failed", subscriber)
