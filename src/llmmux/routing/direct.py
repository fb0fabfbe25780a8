"""One call to one named provider that is not a routed chat or embedding: Ollama's model
management (`/api/pull`, `/api/delete`) and its reads (`/api/show`, `/api/ps`, `/api/version`).

The call goes through the same gates as a routed attempt: the provider's health admits it
(one that is down is refused without being called), its limits hold a slot for the call's
length, and how it ended counts toward its health. A change (`record=True`: a pull, a delete)
is published as a finished request, so the ledger, metrics and logs see it; a read is not,
since clients poll them (Open WebUI asks `/api/ps` every few seconds).

    result = await direct_call(router.health, router.limiter, router.events, provider, op, context=ctx)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import Attempt, LLMMuxError, ProvidersUnavailable, RateLimited, UpstreamError
from ..events import AttemptRecord, CallContext, Events, RequestRecord
from ..health.breaker import Admission
from ..health.monitor import HealthMonitor
from ..limits.limiter import Limiter, Permit
from ..providers.base import Provider

P = TypeVar("P", bound=Provider)
T = TypeVar("T")


async def direct_call(
    health: HealthMonitor,
    limiter: Limiter,
    events: Events,
    provider: P,
    call: Callable[[P], Awaitable[T]],
    *,
    model: str = "",
    context: CallContext | None = None,
    record: bool = False,
) -> T:
    name = provider.name
    admission = health.admit(name)
    if admission is Admission.REJECT:
        wait = health.retry_in(name)
        raise ProvidersUnavailable(
            f"Provider '{name}' is {health.record(name).state}; try again later.", retry_after=wait
        )
    trial = admission is Admission.TRIAL
    try:
        permit = await limiter.admit(name)
    except BaseException:
        health.released(name, trial=trial)
        raise
    if not isinstance(permit, Permit):
        health.released(name, trial=trial)
        raise RateLimited(f"Provider '{name}' is at its limits; try again shortly.", retry_after=permit)
    finished = RequestRecord(context or CallContext(), model, stream=False, provider=name, model=model)
    if record:
        events.start(finished)
    started, wall = time.perf_counter(), time.time()
    try:
        result = await call(provider)
    except UpstreamError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        health.failed(name, exc, trial=trial)
        finished.attempts.append(Attempt(name, model, exc, elapsed))
        _end(events, finished, wall, elapsed, exc, record)
        raise
    except (LLMMuxError, asyncio.CancelledError) as exc:
        health.released(name, trial=trial)
        _end(events, finished, wall, (time.perf_counter() - started) * 1000, exc, record)
        raise
    finally:
        limiter.release(permit)
    elapsed = (time.perf_counter() - started) * 1000
    health.succeeded(name, latency_ms=elapsed, trial=trial)
    _end(events, finished, wall, elapsed, None, record)
    return result


def _end(
    events: Events,
    finished: RequestRecord,
    wall: float,
    elapsed_ms: float,
    error: LLMMuxError | asyncio.CancelledError | None,
    record: bool,
) -> None:
    if isinstance(error, asyncio.CancelledError):
        finished.status, finished.error_kind = 499, "client_closed"
    elif error is not None:
        finished.status, finished.error_kind = error.status, getattr(error, "kind", None) or error.code or error.type
    if not record:
        return
    finished.upstream_ms = elapsed_ms
    error_upstream = error if isinstance(error, UpstreamError) else None
    events.attempt(AttemptRecord.of(finished, wall, elapsed_ms, error_upstream))
    finished.latency_ms = (time.perf_counter() - finished.context.started_perf) * 1000
    events.publish(finished)
