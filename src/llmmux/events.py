"""What happened to each request, published for the ledger, metrics and logs.

The pipeline publishes; subscribers must only enqueue or count (they run on the hot path,
synchronously) and do their I/O elsewhere. A subscriber that raises is logged and skipped,
never allowed to fail the request.

Two moments are published: `start` when a request enters the pipeline (in-flight gauges,
body capture) and `publish` when it is finished, exactly once per started request. One
hook may refuse a request before it is routed, or narrow where it may go: `admit` (virtual
keys' allow-lists, budgets and rate limits). All of it lives here, on the router's one Events object, so it outlives
the pipelines a config reload replaces.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from .errors import Attempt, LLMMuxError
from .types import ChatRequest, ChatResponse, EmbeddingRequest, Usage

log = logging.getLogger("llmmux.events")


def new_request_id() -> str:
    """24 hex digits: milliseconds since the epoch (48 bits), then 48 random bits.

    Ids that grow with time sort like the requests did, and the ledger's unique index on
    them takes each new row at its end instead of at a random page: at millions of rows
    that is the difference between an append and a page read per insert.
    """
    return f"{time.time_ns() // 1_000_000:012x}{os.urandom(6).hex()}"


@dataclass(slots=True)
class CallContext:
    """Who is asking and how: set by the front door (or the library) before routing."""

    request_id: str = field(default_factory=new_request_id)
    client_api: str = "library"
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


class AllowList(Protocol):
    """Which routed candidates a caller may use, judged by the names each goes by (a virtual key)."""

    def allows_any(self, names: Iterable[str]) -> bool: ...

    def refusal(self, model: str) -> LLMMuxError: ...


Subscriber = Callable[[RequestRecord], None]
Admit = Callable[[ChatRequest | EmbeddingRequest, CallContext], "AllowList | Awaitable[AllowList | None] | None"]
"""Refuses a request by raising, else says what it may be routed to (None: anywhere); an
awaitable when it must ask a shared store (keys' limits across instances)."""


class Events:
    """Subscribers to request start and request end: `events.subscribe(fn)`, `events.subscribe(fn, start=True)`."""

    __slots__ = ("_starters", "_subscribers", "admit")

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._starters: list[Subscriber] = []
        self.admit: Admit | None = None  # refuses a request (raises), or limits where it may go

    def subscribe(self, subscriber: Subscriber, *, start: bool = False) -> Callable[[], None]:
        """Add a subscriber to finished requests (or, with `start`, to starting ones); returns its remover."""
        target = self._starters if start else self._subscribers
        target.append(subscriber)
        return lambda: target.remove(subscriber)

    def start(self, record: RequestRecord) -> None:
        _call(self._starters, record)

    def publish(self, record: RequestRecord) -> None:
        _call(self._subscribers, record)


def _call(subscribers: list[Subscriber], record: RequestRecord) -> None:
    for subscriber in subscribers:
        try:
            subscriber(record)
        except Exception:
            log.exception("event subscriber %r failed", subscriber)
