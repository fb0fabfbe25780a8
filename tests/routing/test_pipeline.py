"""The walk: health gates, waiting, limits, fallback policies, context-length refusals, hedging, streams.

Providers are in-process fakes (no network); times are tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from llmmux.errors import (
    AllAttemptsFailed,
    ContextLengthExceeded,
    NotSupported,
    ProvidersUnavailable,
    RateLimited,
    StreamInterrupted,
    UpstreamClientError,
    UpstreamRateLimited,
    UpstreamServerError,
)
from llmmux.router import Router
from support.fakes import Act, fake, fake_router

USER = [{"role": "user", "content": "hello"}]


def router(
    providers: dict[str, Any] | None = None,
    *,
    fallback: list[str] | None = None,
    health: dict[str, Any] | None = None,
    **sections: Any,
) -> Router:
    providers = providers or {"a": {"models": ["m"]}, "b": {"models": ["m"]}, "c": {"models": ["m"]}}
    names = list(providers)
    return fake_router(
        {
            "providers": providers,
            "routing": {
                "exact_matches": {
                    "r": {
                        "provider": names[0],
                        "model": "m",
                        "fallback": fallback if fallback is not None else names[1:],
                    }
                }
            },
            "health_checks": {"enabled": False, "failure_threshold": 2, "cooldown_seconds": 60, **(health or {})},
            **sections,
        }
    )


def boom(status: int = 500) -> UpstreamServerError:
    return UpstreamServerError(f"upstream said {status}", provider="x", upstream_status=status)


async def chat(r: Router, model: str = "r", **kw: Any) -> Any:
    return await r.chat(model=model, messages=USER, **kw)


async def test_a_cooling_candidate_is_skipped_without_being_called() -> None:
    r = router()
    fake(r, "a").default = Act(error=boom())
    for _ in range(2):
        assert (await chat(r)).provider == "b"
    assert r.health.record("a").state == "cooldown"
    calls = fake(r, "a").calls
    for _ in range(5):
        assert (await chat(r)).provider == "b"
    assert fake(r, "a").calls == calls == 2


async def test_after_the_cooldown_one_trial_request_brings_it_back() -> None:
    r = router(health={"cooldown_seconds": 0.05})
    fake(r, "a").script(Act(error=boom()), Act(error=boom()))
    await chat(r), await chat(r)
    assert r.health.record("a").state == "cooldown"
    await asyncio.sleep(0.06)
    done = await chat(r)
    assert done.provider == "a" and r.health.record("a").state == "active"
    assert r.health.transitions("a") == {"active->cooldown": 1, "cooldown->active": 1}


async def test_when_every_candidate_is_down_the_request_waits_for_the_first_to_come_back() -> None:
    r = router({"a": {"models": ["m"]}}, health={"cooldown_seconds": 0.2})
    fake(r, "a").script(Act(error=boom()), Act(error=boom()))
    for _ in range(2):
        with pytest.raises(AllAttemptsFailed):
            await chat(r)
    started = time.perf_counter()
    done = await chat(r)  # a is cooling down: wait for its half-open trial instead of failing
    assert done.provider == "a" and done.attempt_count == 1
    assert 0.1 < time.perf_counter() - started < 1.0


async def test_waiting_is_bounded_then_503_with_retry_after() -> None:
    r = router({"a": {"models": ["m"]}}, routing_strategy={"max_wait_seconds": 0.05})
    fake(r, "a").default = Act(error=boom())
    for _ in range(2):
        with pytest.raises(AllAttemptsFailed):
            await chat(r)
    started = time.perf_counter()
    with pytest.raises(ProvidersUnavailable) as info:
        await chat(r)
    assert 0.04 < time.perf_counter() - started < 0.5
    # The first cooldown after failures is the short one (min_cooldown_seconds, 10 s).
    assert info.value.status == 503 and 9 <= int(info.value.headers()["retry-after"]) <= 10
    assert "a/m: cooldown" in info.value.message
    assert fake(r, "a").calls == 2


async def test_excess_over_max_concurrency_goes_to_the_next_candidate() -> None:
    r = router({"a": {"models": ["m"], "max_concurrency": 2}, "b": {"models": ["m"]}})
    fake(r, "a").default = fake(r, "b").default = Act(delay=0.05)
    results = await asyncio.gather(*(chat(r) for _ in range(5)))
    assert sorted(d.provider for d in results) == ["a", "a", "b", "b", "b"]
    assert fake(r, "a").max_in_flight == 2
    assert r.limiter.in_flight("a") == r.limiter.in_flight("b") == 0


async def test_when_every_candidate_is_at_its_limit_requests_queue_then_get_429() -> None:
    r = router(
        {"a": {"models": ["m"], "max_concurrency": 1}},
        rate_limit_settings={"queue_size": 2, "queue_timeout_seconds": 0.15},
    )
    fake(r, "a").default = Act(delay=0.05)
    # One runs, two wait in the queue and run in turn, the fourth finds the queue full.
    outcomes = await asyncio.gather(*(chat(r) for _ in range(4)), return_exceptions=True)
    answered = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, RateLimited)]
    assert len(answered) == 3 and len(refused) == 1
    assert refused[0].status == 429 and "retry-after" in refused[0].headers()
    assert fake(r, "a").max_in_flight == 1
    # A queue that times out also answers 429.
    fake(r, "a").default = Act(delay=0.4)
    slow = asyncio.ensure_future(chat(r))
    await asyncio.sleep(0.01)
    with pytest.raises(RateLimited):
        await chat(r)
    await slow


async def test_rpm_limit_sends_the_excess_elsewhere() -> None:
    r = router({"a": {"models": ["m"]}, "b": {"models": ["m"]}}, rate_limit_settings={"limits": {"a": {"rpm": 3}}})
    providers = [(await chat(r)).provider for _ in range(5)]
    assert providers == ["a", "a", "a", "b", "b"]


async def test_max_fallbacks_bounds_the_candidates_tried() -> None:
    r = router(routing_strategy={"max_fallbacks": 1}, health={"failure_threshold": 10})
    for name in "abc":
        fake(r, name).default = Act(error=boom())
    with pytest.raises(AllAttemptsFailed) as info:
        await chat(r)
    assert [a.provider for a in info.value.attempts] == ["a", "b"]
    assert fake(r, "c").calls == 0


async def test_fallback_on_chooses_which_failures_move_on() -> None:
    r = router(routing_strategy={"fallback_on": [429, "timeout"]}, health={"failure_threshold": 10})
    fake(r, "a").script(
        Act(error=boom(500)), Act(error=UpstreamRateLimited("slow down", provider="a", upstream_status=429))
    )
    with pytest.raises(UpstreamServerError):
        await chat(r)
    assert fake(r, "b").calls == 0
    assert (await chat(r)).provider == "b"


async def test_client_errors_do_not_fall_back_unless_asked() -> None:
    refused = UpstreamClientError("bad", provider="a", upstream_status=404)
    r = router()
    fake(r, "a").default = Act(error=refused)
    with pytest.raises(UpstreamClientError):
        await chat(r)
    assert r.health.record("a").state == "active"  # the request was at fault, not the provider
    r = router(routing_strategy={"fallback_on": ["client_error"]})
    fake(r, "a").default = Act(error=refused)
    assert (await chat(r)).provider == "b"


async def test_a_candidate_that_cannot_serve_the_request_is_passed_over_and_stays_healthy() -> None:
    r = router(fallback=[])
    fake(r, "a").default = Act(error=NotSupported("a chat model does not embed", provider="a"))
    for _ in range(3):
        with pytest.raises(AllAttemptsFailed) as caught:
            await chat(r)
        assert caught.value.status == 400
    assert r.health.record("a").state == "active"  # the request was at fault, not the provider
    r = router()
    fake(r, "a").default = Act(error=NotSupported("a chat model does not embed", provider="a"))
    assert (await chat(r)).provider == "b"


async def test_a_context_length_refusal_falls_back_to_a_larger_window_only() -> None:
    r = router(
        {
            "a": {"models": [{"name": "m", "context_length": 8192}]},
            "b": {"models": [{"name": "m", "context_length": 4096}]},
            "c": {"models": [{"name": "m", "context_length": 131072}]},
        }
    )
    fake(r, "a").default = Act(
        error=ContextLengthExceeded(
            "This model's maximum context length is 8192 tokens", provider="a", upstream_status=400
        )
    )
    done = await chat(r)
    assert done.provider == "c" and fake(r, "b").calls == 0
    assert [a.error.kind for a in done.attempts] == ["context_length_exceeded"]


@pytest.mark.parametrize(
    "message",
    [
        "request (4476 tokens) exceeds the available context size (4096 tokens)",
        "prompt is too long: 4476 tokens > 4096 maximum",
    ],
)
async def test_the_window_is_read_from_the_error_when_the_registry_does_not_say(message: str) -> None:
    r = router(
        {
            "a": {"models": ["m"]},
            "b": {"models": [{"name": "m", "context_length": 4096}]},
            "unknown": {"models": ["m"]},
            "c": {"models": [{"name": "m", "context_length": 32768}]},
        }
    )
    fake(r, "a").default = Act(error=ContextLengthExceeded(message, provider="a", upstream_status=400))
    assert (await chat(r)).provider == "c"
    assert fake(r, "b").calls == fake(r, "unknown").calls == 0


async def test_a_context_length_refusal_with_no_larger_window_known_is_the_clients_error() -> None:
    r = router()  # no windows configured: the others would most likely refuse the same way
    fake(r, "a").default = Act(error=ContextLengthExceeded("prompt is too long", provider="a", upstream_status=400))
    with pytest.raises(ContextLengthExceeded):
        await chat(r)
    assert fake(r, "b").calls == fake(r, "c").calls == 0


async def test_hedging_races_a_second_candidate_after_the_delay_and_cancels_the_loser() -> None:
    r = router(routing_strategy={"hedge": {"after_ms": 30}})
    fake(r, "a").default = Act(delay=2.0)
    started = time.perf_counter()
    done = await chat(r)
    assert done.provider == "b" and time.perf_counter() - started < 0.5
    assert fake(r, "a").in_flight == 0 and r.limiter.in_flight("a") == 0
    assert r.health.record("a").state == "active"  # cancelled, not failed
    # A fast first candidate never starts the second.
    fake(r, "a").default = Act(delay=0.0)
    calls = fake(r, "b").calls
    assert (await chat(r)).provider == "a" and fake(r, "b").calls == calls


async def test_hedging_waits_for_the_p95_once_there_are_samples() -> None:
    r = router(routing_strategy={"hedge": {"after_ms": 10, "min_samples": 5}})
    fake(r, "a").default = Act(delay=0.06)
    for _ in range(5):
        fake(r, "a").script(Act(delay=0.0))
    for _ in range(5):
        await chat(r)  # samples of ~0 ms: p95 is tiny, so the next slow one is hedged at once
    assert (await chat(r)).provider == "b"


async def test_hedged_pair_both_failing_falls_through_to_the_next() -> None:
    r = router(routing_strategy={"hedge": {"after_ms": 5}}, health={"failure_threshold": 10})
    fake(r, "a").default = Act(delay=0.03, error=boom())
    fake(r, "b").default = Act(error=boom())
    done = await chat(r)
    assert done.provider == "c" and sorted(a.provider for a in done.attempts) == ["a", "b"]


async def test_a_stream_that_sends_nothing_falls_back_and_a_stall_after_bytes_interrupts() -> None:
    r = router({"a": {"models": ["m"], "first_token_timeout": 0.05, "stall_timeout": 0.05}, "b": {"models": ["m"]}})
    fake(r, "a").script(Act(delay=1.0), Act(stall_after=1, stall=1.0))
    stream = await r.open_stream(model="r", messages=USER)
    assert stream.provider == "b" and [a.error.kind for a in stream.attempts] == ["timeout"]
    await stream.aclose()
    stream = await r.open_stream(model="r", messages=USER)
    assert stream.provider == "a"
    chunks = []
    with pytest.raises(StreamInterrupted, match="stalled"):
        async for chunk in stream:
            chunks.append(chunk)
    assert len(chunks) == 1 and stream.record.error_kind == "stream_stalled"
    assert r.health.record("a").last_error == "a stalled: no data for 0.05 s"
    assert r.limiter.in_flight("a") == 0 and r.pipeline.active == 0


async def test_a_stream_broken_before_its_first_chunk_falls_back() -> None:
    r = router()
    fake(r, "a").script(Act(error=boom(502)))
    stream = await r.open_stream(model="r", messages=USER)
    texts = [c.choices[0].delta.content async for c in stream if c.choices]
    assert stream.provider == "b" and texts == ["from b[0]", "from b[1]", "from b[2]"]
    assert stream.record.status == 200 and stream.record.usage is not None


async def test_every_request_is_published_with_its_attempts() -> None:
    r = router()
    records: list[Any] = []
    r.events.subscribe(records.append)
    fake(r, "a").script(Act(error=boom()))
    await chat(r)
    assert [(x.provider, x.status, len(x.attempts)) for x in records] == [("b", 200, 1)]
    assert r.pipeline.active == 0


async def test_settle_later_publishes_the_answer_when_the_caller_settles_it_and_only_then() -> None:
    """A door writes the reply first: health, limits and the published record wait for `settle()`."""
    r = router()
    records: list[Any] = []
    r.events.subscribe(records.append)
    done = await chat(r, settle_later=True)
    assert (done.provider, records, done.cost) == ("a", [], 0.0)
    done.settle()
    done.settle()  # once, however often it is called
    assert [(x.provider, x.status) for x in records] == [("a", 200)]
    assert done.cost == records[0].cost_usd and r.pipeline.active == 0
    await chat(r)  # without it, as before: published before the answer is returned
    assert len(records) == 2


@pytest.mark.parametrize("kind", ["chat", "stream", "embed"])
async def test_a_request_whose_admission_breaks_is_still_published_once(kind: str) -> None:
    # chat, streams and embeddings share one bookkeeping path: every started record ends.
    r = router()
    started: list[Any] = []
    records: list[Any] = []
    r.events.subscribe(records.append)
    r.events.subscribe(started.append, start=True)

    def broken(request: Any, context: Any) -> None:
        raise RuntimeError("a bug in a hook")

    r.events.admit = broken
    with pytest.raises(RuntimeError):
        if kind == "chat":
            await chat(r)
        elif kind == "stream":
            await r.open_stream(model="r", messages=USER)
        else:
            await r.embed(model="r", input=["hello"])
    assert records == started and [(x.status, x.error_kind) for x in records] == [(500, "internal_error")]
    assert r.pipeline.active == 0


async def test_a_request_abandoned_by_its_client_releases_everything_and_is_recorded() -> None:
    r = router()
    records: list[Any] = []
    r.events.subscribe(records.append)
    fake(r, "a").default = Act(delay=5.0)
    task = asyncio.ensure_future(chat(r))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(x.status, x.error_kind) for x in records] == [(499, "client_closed")]
    assert r.pipeline.active == 0 and r.limiter.in_flight("a") == 0 and fake(r, "a").in_flight == 0
    assert r.health.record("a").state == "active"


async def test_a_hedged_stream_keeps_the_first_to_send_a_chunk_and_closes_the_other() -> None:
    r = router(routing_strategy={"hedge": {"after_ms": 20}})
    fake(r, "a").default = Act(delay=2.0)
    stream = await r.open_stream(model="r", messages=USER)
    texts = [c.choices[0].delta.content async for c in stream if c.choices]
    assert stream.provider == "b" and texts[0] == "from b[0]"
    assert r.limiter.in_flight("a") == r.limiter.in_flight("b") == 0 and r.pipeline.active == 0
    assert r.health.record("a").state == "active"


def test_a_local_model_that_cannot_load_is_a_server_error_to_fallback_rules() -> None:
    from llmmux.config.route_policy import error_tags
    from llmmux.errors import ModelLoadFailed

    error = ModelLoadFailed("cannot load m.gguf", provider="local")
    assert error.kind == "model_load_failed"
    assert {"model_load_failed", "server_error"} <= error_tags(error)
