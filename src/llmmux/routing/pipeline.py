"""The request pipeline: plan the request, walk its candidates, retry, make one attempt.

    Pipeline.chat / embed / open_stream
                                  one request: admit it, plan it, walk it; one bookkeeping path for
                                  all three (`_started`, `_InFlight`, `_answered`/`_stream_ended` → `_ended`)
      _Walk.run                   candidates in plan order; waits (bounded) when all are held back
        _Walk._candidate          retries of one candidate, or a hedged pair (`_hedged`)
          _Walk._attempt          the gates (health admission, limits permit), one call, its report

The HTTP server and the Python library both call this; neither holds routing, retry or
accounting logic of its own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import msgspec

from .. import params
from ..bounds import check_model_name, clip
from ..cache.responses import Hit, Lookup, ResponseCache
from ..config.model import MAX_RETRY_AFTER_S
from ..errors import (
    AllAttemptsFailed,
    Attempt,
    ContextLengthExceeded,
    InvalidRequest,
    LLMMuxError,
    ModelNotFound,
    ProvidersUnavailable,
    RateLimited,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamTimeout,
)
from ..estimate import estimate_usage
from ..events import AllowList, AttemptRecord, CallContext, Events, RequestRecord
from ..health.breaker import Admission
from ..health.monitor import HealthMonitor
from ..health.signals import LatencyStats
from ..limits.limiter import Limiter, Permit
from ..param_values import check_embedding_values, check_values
from ..pricing import Pricing
from ..types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from . import first_token
from .first_token import PromptSpeeds
from .planner import Plan, Planner, latency_key
from .results import Completion, Embeddings
from .stream import ChatStream
from .table import Candidate, Route, RouteTable

T = TypeVar("T")
Opened = tuple[AsyncIterator[list[ChatChunk]], list[ChatChunk]]  # the batches, and the first
# 'maximum context length is 8192 tokens' (OpenAI, vLLM), 'the available context size (4096 tokens)'
# (llama.cpp), 'prompt is too long: 210000 tokens > 200000 maximum' (Anthropic).
_WINDOW = re.compile(
    r"(?:context (?:length|size|window)|n_ctx)\D{0,40}?(\d{3,8})|>\s*(\d{3,8})\s*maximum", re.IGNORECASE
)


@dataclass(slots=True)
class Lease:
    """An attempt in flight: its candidate, its share of the limits, and whether it is a trial."""

    candidate: Candidate
    permit: Permit
    trial: bool
    started: float

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


class Skipped(Exception):
    """A candidate was held back before anything was sent: by its health, or by its limits."""

    def __init__(self, why: str, wait: float, *, limit: bool) -> None:
        super().__init__(why)
        self.why = why
        self.wait = wait
        self.limit = limit


class _Failed(Exception):
    """How the candidates of one step ended: (candidate, Skipped or UpstreamError) pairs."""

    def __init__(self, outcomes: list[tuple[Candidate, Exception]]) -> None:
        super().__init__(outcomes)
        self.outcomes = outcomes


class Pipeline:
    """Walks a request's candidates with retries, fallbacks, health, limits and hedging.

    `events.admit`, when set, runs first and may refuse a request by raising an LLMMuxError
    (key permissions, budgets, rate limits); a refusal is published like any failure.
    """

    def __init__(
        self,
        table: RouteTable,
        events: Events | None = None,
        *,
        health: HealthMonitor | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        cache: ResponseCache | None = None,
        pricing: Pricing | None = None,
    ) -> None:
        self.table = table
        self.pricing = pricing  # prices each record before it is published: one priced record for every sink
        self.cache = cache  # None unless some route caches: then the hot path does not look
        self.settings = table.settings
        self.events = events or Events()
        self.health = health or HealthMonitor(self.settings.health)
        self.limiter = limiter or Limiter(self.settings.limits, self.health.state, self.health.clock)
        self.limiter.changed = self.health.changed  # one signal wakes the waiters of either
        self.planner = Planner(table, self.health, self.limiter, rng)
        self._sleep = sleep
        self.speeds = PromptSpeeds()  # local models' prompt-reading speeds, for their first-token deadlines
        self.active = 0  # requests and open streams, so a reload knows when this pipeline is idle

    def route_for(self, request: ChatRequest | EmbeddingRequest) -> Route:
        return self.planner.resolve(request)

    def plan(self, request: ChatRequest | EmbeddingRequest, *, explain: bool = False) -> Plan:
        return self.planner.plan(request, explain=explain)

    # -- requests --

    def _prepare(
        self, request: ChatRequest, context: CallContext, allowed: AllowList | None
    ) -> tuple[Plan, params.Fitting]:
        """Normalise the parameters once, plan the request, check their values unless the route passes
        them unchecked, keep only candidates a strict route allows."""
        fitting = params.Fitting(params.normalise(request))
        plan = self._planned(fitting.request, allowed, context.tags)
        if not plan.route.pass_unchecked_params:
            check_values(fitting.request, context.client_api)
        if context.headers and any(c.provider.forward_headers for c in plan.candidates):
            client = {"client_headers": context.headers, "client_query": context.query}
            fitting = params.Fitting(msgspec.structs.replace(fitting.request, **client))
        if plan.route.strict:
            plan.candidates = _honouring(plan.route.public, plan.candidates, fitting.request)
        return plan, fitting

    def _planned(
        self, request: ChatRequest | EmbeddingRequest, allowed: AllowList | None, tags: tuple[str, ...] = ()
    ) -> Plan:
        """The plan, less the candidates the caller may not use: every one, fallbacks included."""
        try:
            plan = self.planner.plan(request, explain=self.settings.debug_header, tags=tags)
        except ModelNotFound as exc:
            if allowed is None or not exc.suggestions:
                raise
            # Suggest only names the caller may use: a 404 must not list the rest of the table.
            raise ModelNotFound(exc.model, [s for s in exc.suggestions if allowed.allows_any((s,))]) from None
        if allowed is not None:
            names = self.table.names_of
            kept = [c for c in plan.candidates if allowed.allows_any(names(plan.route, c))]
            if not kept:
                raise allowed.refusal(request.model)
            plan.candidates = kept
            if plan.explanation is not None:  # the debug header names only what the caller may use
                plan.explanation.final = list(kept)
        return plan

    def _started(
        self, request: ChatRequest | EmbeddingRequest, context: CallContext | None, stream: bool
    ) -> RequestRecord:
        """The request's record, published as started: from here it is published once, however it ends."""
        chat = request if isinstance(request, ChatRequest) else None
        record = RequestRecord(context or CallContext(), clip(request.model), stream=stream, request=chat)
        self.events.start(record)
        return record

    async def _admitted(self, request: ChatRequest | EmbeddingRequest, record: RequestRecord) -> AllowList | None:
        """Where the caller may go (None: anywhere), or a refusal raised."""
        check_model_name(request.model)  # before it reaches a header, a label or a key's allow-list
        if self.events.admit is None:
            return None
        allowed = self.events.admit(request, record.context)
        if inspect.isawaitable(allowed):
            allowed = await allowed  # a shared store decides (keys' limits across instances)
        return allowed

    async def chat(
        self, request: ChatRequest, context: CallContext | None = None, *, settle_later: bool = False
    ) -> Completion:
        """`settle_later`: the answer's accounting is left to `Completion.settle()`, which a door
        calls once the reply is written (at one connection the client waits for what runs first)."""
        record = self._started(request, context, stream=False)

        async def call(c: Candidate) -> ChatResponse:
            return await c.provider.complete(fitting.fitted(c.provider.supported_params), c.model)

        with _InFlight(self, record):
            allowed = await self._admitted(request, record)
            plan, fitting = self._prepare(request, record.context, allowed)
            # After planning: the key's allow-list and the values are checked before any answer, cached or not.
            found = await self._look_up(request, record, plan.route) if self.cache is not None else None
            if found is not None and found.hit is not None:
                return self._served(found.hit, record)
            response, lease = await _Walk(self, plan, record, call, _ignore).run()
        record.response = response
        deferred = settle_later and found is None  # the cache fills after the accounting, and sets a header
        if not deferred:
            self._answered(record, lease, response.usage)
        if found is not None:
            assert self.cache is not None
            self.cache.fill(found, request, record, response=response)
        candidate = lease.candidate
        return Completion(
            response,
            plan.route.public,
            candidate.provider.name,
            candidate.model,
            record.attempts,
            record,
            _header(plan),
            _dropped(fitting, candidate),
            cache=record.cache,
            pending=functools.partial(self._answered, record, lease, response.usage) if deferred else None,
        )

    async def embed(self, request: EmbeddingRequest, context: CallContext | None = None) -> Embeddings:
        record = self._started(request, context, stream=False)

        async def call(c: Candidate) -> EmbeddingResponse:
            return await c.provider.embed(request, c.model)

        with _InFlight(self, record):
            allowed = await self._admitted(request, record)
            plan = self._planned(request, allowed, record.context.tags)
            if not plan.route.pass_unchecked_params:
                check_embedding_values(request, record.context.client_api)
            response, lease = await _Walk(self, plan, record, call, _ignore).run()
        self._answered(record, lease, response.usage)
        candidate = lease.candidate
        return Embeddings(
            response,
            plan.route.public,
            candidate.provider.name,
            candidate.model,
            record.attempts,
            record,
            _header(plan),
        )

    async def open_stream(self, request: ChatRequest, context: CallContext | None = None) -> ChatStream:
        record = self._started(request, context, stream=True)
        with _InFlight(self, record, held=True):  # an open stream stays in flight until it ends
            allowed = await self._admitted(request, record)
            plan, fitting = self._prepare(request, record.context, allowed)
            found = await self._look_up(request, record, plan.route) if self.cache is not None else None
            if found is not None and found.hit is not None:
                return self._replayed(found.hit, record)
            (batches, first), lease = await _Walk(self, plan, record, self._opener(fitting, plan), _close_stream).run()
        ttft = lease.elapsed_ms()
        name = lease.candidate.provider.name
        self.health.succeeded(name, ttft_ms=ttft, trial=lease.trial)

        def ended(stream: ChatStream, error: UpstreamError | None) -> None:
            self._stream_ended(stream, lease, ttft, error, _sole_provider(plan, name))
            if found is not None and error is None and stream.record.status == 200 and stream.collected:
                assert self.cache is not None
                self.cache.fill(found, request, stream.record, chunks=stream.collected)

        return ChatStream(
            batches,
            first,
            plan.route.public,
            lease.candidate,
            record,
            stall_s=self._stall(lease.candidate),
            on_end=ended,
            explanation=_header(plan),
            dropped=_dropped(fitting, lease.candidate),
            collect=found.policy.max_entry_bytes if found is not None and found.write else None,
            cache=record.cache,
        )

    # -- the response cache --

    async def _look_up(self, request: ChatRequest, record: RequestRecord, route: Route) -> Lookup | None:
        """The cache's answer, or what to fill it with; None where the route (as planned) does not cache."""
        assert self.cache is not None
        policy = route.policy.cache
        return None if policy is None else await self.cache.lookup(request, policy, record)

    def _served(self, hit: Hit, record: RequestRecord) -> Completion:
        response = hit.entry.as_response()
        record.response = response
        self._publish(record)
        entry = hit.entry
        return Completion(response, entry.public, entry.provider, entry.model, [], record, cache=hit.label)

    def _replayed(self, hit: Hit, record: RequestRecord) -> ChatStream:
        chunks = hit.entry.as_chunks()

        def ended(stream: ChatStream, error: UpstreamError | None) -> None:
            self.active -= 1
            self._publish(stream.record)

        return ChatStream(
            _replay(chunks[1:]), chunks[:1], hit.entry.public, None, record, stall_s=None, on_end=ended, cache=hit.label
        )

    def _opener(self, fitting: params.Fitting, plan: Plan) -> Callable[[Candidate], Awaitable[Opened]]:
        async def open_first(c: Candidate) -> Opened:
            request = fitting.fitted(c.provider.supported_params)
            batches = c.provider.stream_batches(request, c.model)
            deadline = self._first_token_deadline(c, request, plan)
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(deadline) as timer:
                    # Progress while a local model reads the prompt starts the wait over.
                    rearm = (lambda: timer.reschedule(loop.time() + deadline)) if deadline else (lambda: None)
                    with first_token.watching(rearm):
                        first = await batches.__anext__()
            except StopAsyncIteration:
                raise UpstreamBadResponse(f"{c.provider.name} sent an empty stream", provider=c.provider.name) from None
            except TimeoutError:
                raise UpstreamTimeout(
                    f"{c.provider.name} sent nothing for {deadline:g} s", provider=c.provider.name
                ) from None
            return batches, first

        return open_first

    def _first_token_deadline(self, c: Candidate, request: ChatRequest, plan: Plan) -> float | None:
        """The configured wait; for a local model, stretched to what reading this prompt takes."""
        config = c.provider.config
        floor = config.first_token_timeout or self.settings.first_token_timeout_s or self._stall(c)
        if not c.local or floor is None:
            return floor
        return self.speeds.deadline(
            latency_key(c),
            prompt_tokens=plan.signals.prompt_tokens(),
            floor=floor,
            cap=config.first_token_timeout_max or first_token.DEFAULT_CAP_S,
            assumed=config.prompt_tokens_per_second or first_token.DEFAULT_TOKENS_PER_SECOND,
        )

    def _stall(self, candidate: Candidate) -> float | None:
        return candidate.provider.config.stall_timeout or self.settings.stall_timeout_s

    # -- accounting: every routed call, answered or streamed, ends through `_ended` --

    def _answered(self, record: RequestRecord, lease: Lease, usage: Usage | None) -> None:
        """A whole answer (chat or embeddings) arrived: its provider is healthy and its latency counts."""
        candidate = lease.candidate
        latency = lease.elapsed_ms()
        self.health.succeeded(candidate.provider.name, latency_ms=latency, ttft_ms=None, trial=lease.trial)
        self._observe(candidate, latency, None)
        record.provider, record.model, record.usage = candidate.provider.name, candidate.model, usage
        self._ended(record, lease)

    def _ended(self, record: RequestRecord, lease: Lease, error: UpstreamError | None = None) -> None:
        """The permit back with the tokens used, `attempt_finished`, then the record priced and published."""
        usage = record.usage
        self.limiter.release(lease.permit, usage.total_tokens if usage else None)
        self._attempted(record, lease.candidate, lease.started, error)
        self._publish(record)

    def _observe(self, candidate: Candidate, latency_ms: float, ttft_ms: float | None) -> None:
        key = latency_key(candidate)
        stats = self.health.state.get(LatencyStats, key) or LatencyStats()
        stats.add(latency_ms=latency_ms, ttft_ms=ttft_ms)
        self.health.state.put(key, stats)

    def _stream_ended(
        self, stream: ChatStream, lease: Lease, ttft_ms: float, error: UpstreamError | None, sole: bool
    ) -> None:
        self.active -= 1
        if error is not None and not (sole and isinstance(error, UpstreamTimeout)):
            self.health.failed(lease.candidate.provider.name, error)
        elif error is None and stream.record.status == 200:
            self._observe(lease.candidate, lease.elapsed_ms(), ttft_ms)
            self._observe_prompt_speed(lease.candidate, stream.record.usage, ttft_ms)
        self._ended(stream.record, lease, error)

    def _observe_prompt_speed(self, candidate: Candidate, usage: Usage | None, ttft_ms: float) -> None:
        if candidate.local and usage is not None:
            read = usage.prompt_tokens - usage.cached_tokens  # a cached prefix is not read again
            self.speeds.observe(latency_key(candidate), tokens=read, seconds=ttft_ms / 1000)

    def _failed(self, record: RequestRecord, error: BaseException) -> None:
        """The request ended without an answer: its record still ends, so nothing is lost."""
        if isinstance(error, asyncio.CancelledError):
            # The client went away before an answer: still a row for the ledger.
            record.status, record.error_kind = 499, "client_closed"
        elif isinstance(error, LLMMuxError):
            record.status = error.status
            record.error_kind = getattr(error, "kind", None) or error.code or error.type
        elif isinstance(error, Exception):
            record.status, record.error_kind = 500, "internal_error"  # not an llmmux error: a bug somewhere
        else:
            return  # KeyboardInterrupt, SystemExit: the process is going, not the request
        self._publish(record)

    def _publish(self, record: RequestRecord) -> None:
        record.latency_ms = (time.perf_counter() - record.context.started_perf) * 1000
        if self.pricing is not None:
            _price(record, self.pricing)
        self.events.publish(record)

    def _attempted(
        self, record: RequestRecord, candidate: Candidate, started: float, error: UpstreamError | None = None
    ) -> None:
        """`attempt_finished`, with the attempt's measured start and length (built only for a listener)."""
        if not self.events.wants_attempts:
            return
        context = record.context
        elapsed = (time.perf_counter() - started) * 1000
        status = record.status if error is None else error.status
        kind = (record.error_kind if status != 200 else None) if error is None else error.kind
        self.events.attempt(
            AttemptRecord(
                context.request_id,
                candidate.provider.name,
                candidate.model,
                context.started + (started - context.started_perf),
                elapsed,
                status,
                kind,
                None if error is None else error.message,
            )
        )


class _InFlight:
    """A request counted in `Pipeline.active` while it is routed; a failure ends its record.

    `held`: an open stream stays counted after routing, until its `on_end` gives the count back.
    """

    __slots__ = ("held", "pipeline", "record")

    def __init__(self, pipeline: Pipeline, record: RequestRecord, *, held: bool = False) -> None:
        self.pipeline, self.record, self.held = pipeline, record, held

    def __enter__(self) -> None:
        self.pipeline.active += 1

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if error is not None:
            self.pipeline._failed(self.record, error)
        if error is not None or not self.held:
            self.pipeline.active -= 1


class _Walk(Generic[T]):
    """One request's way through its plan."""

    def __init__(
        self,
        pipeline: Pipeline,
        plan: Plan,
        record: RequestRecord,
        call: Callable[[Candidate], Awaitable[T]],
        abandon: Callable[[T], Awaitable[None]],
    ) -> None:
        self.p = pipeline
        self.plan = plan
        self.route = plan.route
        self.policy = plan.route.policy
        self.record = record
        self.call = call
        self.abandon = abandon
        self.pending = list(plan.candidates)
        self.tried: set[tuple[str, str]] = set()
        self.skipped: dict[tuple[str, str], Skipped] = {}

    async def run(self) -> tuple[T, Lease]:
        deadline: float | None = None
        queued = False
        try:
            while True:
                self.skipped = {}
                result = await self._pass()
                if result is not None:
                    return result
                now = self.p.health.clock()
                if not self.skipped or self._bound_reached(0):
                    raise self._exhausted()  # nothing left that could come back
                if deadline is None:
                    queued = self.p.limiter.enqueue()
                    deadline = now + (self._max_wait() if queued else 0.0)
                if now >= deadline:
                    raise self._exhausted()
                wait = min(s.wait for s in self.skipped.values())
                await self.p.health.changed.wait(min(wait, deadline - now))
        finally:
            if queued:
                self.p.limiter.dequeue()

    async def _pass(self) -> tuple[T, Lease] | None:
        """Try every candidate not held back, in order, until one answers."""
        while True:
            skipped = self.skipped
            ready = [c for c in self.pending if c.key not in skipped] if skipped else self.pending
            if not ready or self._bound_reached(0):
                return None
            partner = ready[1] if self.policy.hedge and len(ready) > 1 and not self._bound_reached(1) else None
            try:
                return await (self._hedged(ready[0], partner) if partner else self._candidate(ready[0]))
            except _Failed as failed:
                for candidate, error in failed.outcomes:
                    self._settle(candidate, error)

    def _bound_reached(self, extra: int) -> bool:
        bound = self.policy.max_fallbacks
        return bound is not None and len(self.tried) + extra > bound

    def _settle(self, candidate: Candidate, error: Exception) -> None:
        if isinstance(error, Skipped):
            self.skipped[candidate.key] = error
            return
        assert isinstance(error, UpstreamError)
        self.pending = [c for c in self.pending if c.key != candidate.key]
        if not self.policy.falls_back(error):
            raise error
        if isinstance(error, ContextLengthExceeded):
            self._drop_smaller_windows(candidate, error)
            if not self.pending:
                raise error  # no larger window to try: the prompt is too long, the client's to fix

    def _drop_smaller_windows(self, failed: Candidate, error: UpstreamError) -> None:
        """After a context-length refusal, only candidates known to have a larger window are tried.

        A candidate whose window is unknown would most likely refuse the same way.
        """
        window = failed.context_length or _window_in(error.message)
        self.pending = [
            c for c in self.pending if c.context_length is not None and (window is None or c.context_length > window)
        ]

    # -- one candidate --

    async def _candidate(self, candidate: Candidate) -> tuple[T, Lease]:
        last: UpstreamError | None = None
        for retry in range(self.route.retry_attempts + 1):
            try:
                return await self._attempt(candidate)
            except Skipped as skipped:
                raise _Failed([(candidate, last or skipped)]) from None
            except UpstreamError as exc:
                last = exc
                delay = _retry_delay(self.route, retry, exc) if exc.retryable else None
                if delay is None:
                    break
                await self.p._sleep(delay)
        assert last is not None
        raise _Failed([(candidate, last)])

    async def _attempt(self, candidate: Candidate) -> tuple[T, Lease]:
        name = candidate.provider.name
        health, limiter = self.p.health, self.p.limiter
        admission = health.admit(name)
        if admission is Admission.REJECT:
            wait = health.retry_in(name)
            raise Skipped(
                f"{health.record(name).state} ({health.record(name).reason})", wait if wait else math.inf, limit=False
            )
        trial = admission is Admission.TRIAL
        try:
            permit = await limiter.admit(name, self._tokens(name))
        except BaseException:
            health.released(name, trial=trial)
            raise
        if not isinstance(permit, Permit):
            health.released(name, trial=trial)
            limits = limiter.limits(name)
            raise Skipped(f"at its limits ({limits.describe() if limits else ''})", permit, limit=True)
        self.tried.add(candidate.key)
        lease = Lease(candidate, permit, trial, time.perf_counter())
        try:
            result = await self.call(candidate)
        except UpstreamError as exc:
            elapsed = lease.elapsed_ms()
            self.record.upstream_ms += elapsed
            self.record.attempts.append(Attempt(name, candidate.model, exc, elapsed))
            self.p._attempted(self.record, candidate, lease.started, exc)
            if isinstance(exc, UpstreamTimeout) and _sole_provider(self.plan, name):
                health.released(name, trial=trial)  # slow, not dead: cooling it down helps no one
            else:
                health.failed(name, exc, trial=trial)
            limiter.release(permit)
            await health.published()
            raise
        except BaseException:
            health.released(name, trial=trial)
            limiter.release(permit)
            raise
        self.record.upstream_ms += lease.elapsed_ms()
        return result, lease

    def _tokens(self, provider: str) -> int:
        limits = self.p.limiter.limits(provider)
        return self.plan.signals.prompt_tokens() if limits is not None and limits.tpm else 0

    # -- hedging --

    async def _hedged(self, first: Candidate, second: Candidate) -> tuple[T, Lease]:
        """Start `first`; if it has not answered by its p95, race `second` against it."""
        racing: set[asyncio.Task[tuple[T, Lease]]] = {asyncio.ensure_future(self._candidate(first))}
        outcomes: list[tuple[Candidate, Exception]] = []
        try:
            done, racing = await asyncio.wait(racing, timeout=self._hedge_delay(first))
            if not done:
                racing.add(asyncio.ensure_future(self._candidate(second)))
            while done or racing:
                for task in done:
                    error = task.exception()
                    if error is None:
                        return task.result()
                    if not isinstance(error, _Failed):
                        raise error
                    outcomes += error.outcomes
                if not racing:
                    break
                done, racing = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._cancel(racing)
        raise _Failed(outcomes)

    def _hedge_delay(self, candidate: Candidate) -> float:
        hedge = self.policy.hedge
        assert hedge is not None
        stats = self.p.health.state.get(LatencyStats, latency_key(candidate))
        ms = stats.percentile(hedge.percentile, hedge.min_samples) if stats else None
        return (ms if ms is not None else hedge.after_ms) / 1000

    async def _cancel(self, tasks: set[asyncio.Task[tuple[T, Lease]]]) -> None:
        """Stop the losers of a race; one that answered anyway is closed and its permit returned."""
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, BaseException):
                continue
            result, lease = outcome
            await self.abandon(result)
            self.p.health.released(lease.candidate.provider.name, trial=lease.trial)
            self.p.limiter.release(lease.permit)

    # -- giving up --

    def _max_wait(self) -> float:
        waits = [
            self.policy.max_wait_s if not s.limit else self.p.limiter.config.queue_timeout_s
            for s in self.skipped.values()
        ]
        return max(waits, default=0.0)

    def _exhausted(self) -> LLMMuxError:
        public = self.route.public
        if self.record.attempts:
            return AllAttemptsFailed(public, self.record.attempts)
        held = self.skipped.values()
        finite = [s.wait for s in held if math.isfinite(s.wait)]
        retry_after = min(finite) if finite else None
        detail = "; ".join(f"{'/'.join(k)}: {s.why}" for k, s in self.skipped.items())
        if held and all(s.limit for s in held):
            return RateLimited(
                f"Every candidate for '{public}' is at its client-side limit, and the wait queue "
                f"is full or timed out ({detail}).",
                retry_after=retry_after or self.p.limiter.config.queue_timeout_s,
            )
        return ProvidersUnavailable(
            f"No candidate for '{public}' is available ({detail or 'none left to try'}).", retry_after=retry_after
        )


async def _replay(chunks: list[ChatChunk]) -> AsyncIterator[list[ChatChunk]]:
    if chunks:
        yield chunks  # a stored stream leaves in one write


async def _ignore(result: object) -> None:
    return None


async def _close_stream(opened: Opened) -> None:
    aclose = getattr(opened[0], "aclose", None)
    if aclose is not None:
        await aclose()


def _honouring(public: str, candidates: list[Candidate], request: ChatRequest) -> list[Candidate]:
    """A strict route keeps only the candidates that honour every parameter the request sets."""
    fitting = params.Fitting(request)
    refused = [(c, _dropped(fitting, c)) for c in candidates]
    able = [c for c, names in refused if not names]
    if able:
        return able
    detail = "; ".join(f"{c.provider.name} cannot honour {', '.join(names)}" for c, names in refused)
    first = next((names[0] for _, names in refused), "model")
    if first in (request.hosted_tools or ()):
        detail += " (hosted tools run only on a backend reached through its own Responses API)"
        first = "tools"
    raise InvalidRequest(
        f"Model '{public}' is routed strictly and no candidate honours every parameter: {detail}.", param=first
    )


def _dropped(fitting: params.Fitting, candidate: Candidate) -> list[str]:
    provider = candidate.provider
    dropped = fitting.dropped(provider.supported_params, provider.wire, provider.mapped_fields)
    return dropped + provider.dropped_for(fitting.request, candidate.model)


def _header(plan: Plan) -> str | None:
    return plan.explanation.header() if plan.explanation is not None else None


def _window_in(message: str) -> int | None:
    """The context window an upstream's error names ('maximum context length is 8192 tokens')."""
    match = _WINDOW.search(message)
    return int(match.group(1) or match.group(2)) if match else None


def _retry_delay(route: Route, retry: int, error: UpstreamError) -> float | None:
    """Seconds before trying the same candidate again, or None to move on to the next."""
    if retry >= route.retry_attempts:
        return None
    if error.retry_after is not None:
        return float(error.retry_after) if error.retry_after <= MAX_RETRY_AFTER_S else None
    base = route.retry_delay_ms / 1000 * 2.0**retry
    return base * (0.5 + random.random() / 2)


def _sole_provider(plan: Plan, name: str) -> bool:
    """Whether `name` is the only provider the request's route has (a timeout there is slowness
    to wait out, not a fault to route around)."""
    return all(c.provider.name == name for c in plan.route.candidates)


def _price(record: RequestRecord, pricing: Pricing) -> None:
    """Usage (estimated where the backend reported none) and its cost: what every sink reads."""
    if record.cache_source is not None:
        # A cache hit: no model ran, so no tokens and no cost; what the answer cost is saved.
        record.saved_usd = pricing.cost(record.provider, record.model, record.cache_usage)
    elif record.provider is not None and record.request is not None and _no_usage(record.usage):
        # The backend answered but reported no usage (or the client left mid-stream).
        record.usage = estimate_usage(record.request, record.response, record.output_chars)
    record.cost_usd = pricing.cost(record.provider, record.model, record.usage)


def _no_usage(usage: Usage | None) -> bool:
    # Some servers send a usage object of zeros: with a reply in hand that means "not counted".
    return usage is None or (usage.prompt_tokens == 0 and usage.completion_tokens == 0)
