"""Local models are slow, not dead: a first-token wait that scales with the prompt, progress
that re-arms it, and timeouts that never cool down a model's only provider.

The providers are in-process fakes at a loopback address (so routing takes them for local
models); slowness is a scripted delay, and times are tenths of a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmmux.config.loader import config_from_dict
from llmmux.errors import AllAttemptsFailed
from llmmux.providers.base import ProviderType
from llmmux.router import Router
from llmmux.routing.first_token import PromptSpeeds, report_progress
from llmmux.types import ChatChunk, ChatRequest
from support.fakes import TYPES, Act, FakeProvider, chunk, fake, fake_router

SHORT = [{"role": "user", "content": "hi"}]
LONG = [{"role": "user", "content": "word " * 400}]  # about 500 tokens by the local estimate


def test_the_deadline_is_the_prompt_over_the_speed_between_floor_and_cap() -> None:
    speeds = PromptSpeeds()
    assumed: Any = {"floor": 60.0, "cap": 600.0, "assumed": 25.0}
    assert speeds.deadline("m", prompt_tokens=100, **assumed) == 60.0  # the floor
    assert speeds.deadline("m", prompt_tokens=5000, **assumed) == 400.0  # twice 5000 tokens at 25/s
    assert speeds.deadline("m", prompt_tokens=50_000, **assumed) == 600.0  # the cap
    speeds.observe("m", tokens=4000, seconds=2.0)
    assert speeds.speed("m") == 2000.0 and speeds.deadline("m", prompt_tokens=5000, **assumed) == 60.0
    speeds.observe("m", tokens=1000, seconds=1.0)  # smoothed, not replaced
    assert speeds.speed("m") == pytest.approx(1700.0)
    speeds.observe("m", tokens=10, seconds=5.0)  # a tiny prompt says nothing of reading speed
    assert speeds.speed("m") == pytest.approx(1700.0) and speeds.speed("other") is None


def local(**provider: Any) -> Router:
    return fake_router(
        {
            # Fast unless a test says otherwise, so a short prompt's wait is the floor.
            "providers": {
                "a": {"models": ["m"], "first_token_timeout": 0.15, "prompt_tokens_per_second": 1000, **provider}
            },
            "health_checks": {"enabled": False, "failure_threshold": 1, "cooldown_seconds": 60},
        }
    )


async def first_chunk(r: Router, messages: Any) -> ChatChunk:
    stream = await r.open_stream(model="m", messages=messages)
    try:
        return await anext(aiter(stream))
    finally:
        await stream.aclose()


async def test_a_long_prompt_gets_longer_than_the_floor_and_never_past_the_cap() -> None:
    r = local()  # ~500 tokens at 1000 tokens/s: a 1 s wait
    fake(r, "a").default = Act(delay=0.4)
    assert (await first_chunk(r, LONG)).choices[0].delta.content
    with pytest.raises(AllAttemptsFailed, match="sent nothing for 0.15 s"):
        await first_chunk(r, SHORT)  # a short prompt gets the floor
    capped = local(first_token_timeout_max=0.2)
    fake(capped, "a").default = Act(delay=0.4)
    with pytest.raises(AllAttemptsFailed, match="sent nothing for 0.2 s"):
        await first_chunk(capped, LONG)


async def test_the_speed_measured_from_a_stream_sets_the_next_deadline() -> None:
    r = local(prompt_tokens_per_second=1)
    key = "a/m"
    r.pipeline.speeds.observe(key, tokens=100_000, seconds=1.0)  # as if measured: very fast
    fake(r, "a").default = Act(delay=0.4)
    with pytest.raises(AllAttemptsFailed, match="sent nothing for 0.15 s"):
        await first_chunk(r, LONG)  # at 100k tokens/s the long prompt gets only the floor


class Reading(FakeProvider):
    """Reads its prompt for `reading` seconds before the first chunk, reporting progress as it goes."""

    reading = 0.6

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        self.calls += 1
        for _ in range(12):
            await asyncio.sleep(self.reading / 12)
            if self.config.extra.get("reports"):
                report_progress()
        yield chunk("read it", model)


def reading_router(reports: bool) -> Router:
    config, problems = config_from_dict(
        {
            "providers": {
                "a": {
                    "type": "reading",
                    "models": ["m"],
                    "first_token_timeout": 0.2,
                    "prompt_tokens_per_second": 1000,
                    "reports": reports,
                }
            },
            "health_checks": {"enabled": False},
        }
    )
    assert not problems.errors
    return Router(config, types={**TYPES, "reading": ProviderType("reading", Reading, "http://127.0.0.1:9/v1")})


async def test_progress_while_reading_the_prompt_rearms_the_wait() -> None:
    assert (await first_chunk(reading_router(reports=True), SHORT)).choices[0].delta.content == "read it"
    with pytest.raises(AllAttemptsFailed, match="sent nothing for 0.2 s"):
        await first_chunk(reading_router(reports=False), SHORT)


async def test_timeouts_never_cool_down_a_models_only_provider() -> None:
    r = local()
    fake(r, "a").default = Act(delay=0.4)
    for _ in range(3):
        with pytest.raises(AllAttemptsFailed):
            await first_chunk(r, SHORT)
    assert r.health.record("a").state == "active"  # failure_threshold is 1: slowness did not count
    fake(r, "a").default = Act()
    assert (await first_chunk(r, SHORT)).choices[0].delta.content
    # Where another provider serves the model, the slow one is routed around as before.
    both = fake_router(
        {
            "providers": {
                "a": {"models": ["m"], "first_token_timeout": 0.15, "prompt_tokens_per_second": 1000},
                "b": {"models": ["m"]},
            },
            "routing": {"exact_matches": {"m": {"provider": "a", "model": "m", "fallback": ["b"]}}},
            "health_checks": {"enabled": False, "failure_threshold": 1, "cooldown_seconds": 60},
        }
    )
    fake(both, "a").default = Act(delay=0.4)
    assert (await first_chunk(both, SHORT)).choices[0].delta.content == "from b[0]"
    assert both.health.record("a").state == "cooldown"
