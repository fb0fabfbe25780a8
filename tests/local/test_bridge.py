"""The engine-thread bridge: a stream cancelled with a reason stops its engine and raises the reason."""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest

from llmmux.errors import UpstreamServerError
from llmmux.local.bridge import Emit, ThreadStream


def endless(emit: Emit) -> None:
    """An engine that would generate forever: only `emit` returning True stops it."""
    while not emit(b"token"):
        pass


async def test_a_stream_cancelled_with_a_reason_stops_the_engine_and_raises_it() -> None:
    reason = UpstreamServerError("generation stopped: the gateway is shutting down", provider="local")
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        stream = ThreadStream(endless, executor)
        got = 0
        with pytest.raises(UpstreamServerError) as caught:
            async for _ in stream:
                got += 1
                if got == 3:
                    stream.cancel(reason)
        assert caught.value is reason
        await asyncio.wait_for(stream.done, 5)  # the engine's thread has returned


async def test_a_plain_cancel_ends_the_stream_without_an_error() -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        stream = ThreadStream(endless, executor)
        async for _ in stream:
            stream.cancel()
        stream.cancel(UpstreamServerError("too late", provider="local"))  # stopped already: no error now
        await asyncio.wait_for(stream.done, 5)
