"""The sinks' batches and the request log sleep while there is nothing to hand on, and still
hand a batch on within their interval of its first record."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmmux.config.model import LoggingConfig
from llmmux.events import CallContext, RequestRecord
from llmmux.logs import REQUEST_LOGGER, RequestLog
from llmmux.masking import Masker
from llmmux.sinks import Batches
from llmmux.types import ChatRequest, Message

INTERVAL_S = 0.05


@pytest.fixture
async def timers(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[float]]:
    """Every timer set on the running loop from now on (asyncio.sleep sets one per sleep)."""
    loop = asyncio.get_running_loop()
    set_at: list[float] = []
    call_at = loop.call_at

    def counting(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        set_at.append(when)
        return call_at(when, callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counting)
    yield set_at


def record() -> RequestRecord:
    request = ChatRequest(model="m", messages=[Message(role="user", content="hi")])
    context = CallContext(request_id="r1", client_api="openai", method="POST", path="/v1/chat/completions")
    return RequestRecord(context, "m", stream=False, provider="p", model="m", request=request)


async def until(condition: Any, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not in time"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_idle_batches_set_no_timer_and_a_record_is_handed_on_within_the_interval(timers: list[float]) -> None:
    batches = Batches(INTERVAL_S)
    got: list[list[RequestRecord]] = []
    batches.subscribe(got.append)
    await batches.start()
    try:
        await asyncio.sleep(0.3)  # six intervals, idle: before, six timers besides this one
        assert len(timers) == 1
        batches.add(record())
        batches.add(record())
        assert await until(lambda: got) < 2.0
        assert [len(batch) for batch in got] == [2]  # one batch: the second joined the first
        batches.add(record())
        await until(lambda: len(got) == 2)
    finally:
        await batches.aclose()


async def test_an_idle_request_log_sets_no_timer_and_writes_a_line_within_the_interval(
    timers: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    stream = io.StringIO()
    log = RequestLog(LoggingConfig(), Masker(), stream, interval_s=INTERVAL_S)
    await log.start()
    try:
        await asyncio.sleep(0.3)
        assert len(timers) == 1
        log.log(record())
        await until(lambda: '"request_id":"r1"' in stream.getvalue())
    finally:
        await log.aclose()
