"""server.completions_api: merging several prompts' streams, and running their requests at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmmux.errors import StreamInterrupted
from llmmux.server.completions_api import gather_all, merge
from llmmux.types import ChatChunk


def chunk(text: str) -> ChatChunk:
    return ChatChunk(id=text, model="m", created=0, choices=[])


async def part(
    texts: list[str], *, fail: bool = False, closed: list[str] | None = None, pause: float = 0.0
) -> AsyncIterator[ChatChunk]:
    try:
        for text in texts:
            await asyncio.sleep(pause)
            yield chunk(text)
        if fail:
            raise StreamInterrupted("broke mid-stream")
        await asyncio.sleep(pause)
    finally:
        if closed is not None:
            closed.append(texts[0])


async def collect(streams: list[Any]) -> list[tuple[int, str]]:
    async with contextlib.aclosing(merge(streams)) as merged:
        return [(i, c.id) async for i, c in merged]


async def test_every_part_arrives_tagged_with_its_part() -> None:
    found = await collect([part(["a1", "a2"], pause=0.002), part(["b1", "b2", "b3"], pause=0.001)])
    assert sorted(found) == [(0, "a1"), (0, "a2"), (1, "b1"), (1, "b2"), (1, "b3")]
    assert [t for i, t in found if i == 0] == ["a1", "a2"]  # each part keeps its order


async def test_one_stream_is_passed_through_as_part_zero() -> None:
    assert await collect([part(["x", "y"])]) == [(0, "x"), (0, "y")]


async def test_the_first_failure_ends_the_merge_and_stops_the_others() -> None:
    closed: list[str] = []
    slow = part(["s1", "s2", "s3"], pause=10, closed=closed)
    with pytest.raises(StreamInterrupted):
        await asyncio.wait_for(collect([part(["f1"], fail=True), slow]), timeout=5)
    await asyncio.sleep(0)
    assert closed == ["s1"]  # the slow stream was abandoned, not waited for


async def test_gather_all_cancels_the_rest_and_releases_what_succeeded() -> None:
    released: list[str] = []
    cancelled = asyncio.Event()

    async def ok() -> str:
        return "ok"

    async def slow() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "slow"

    async def bad() -> str:
        await asyncio.sleep(0.01)
        raise StreamInterrupted("no")

    async def release(value: str) -> None:
        released.append(value)

    with pytest.raises(StreamInterrupted):
        await gather_all([ok(), slow(), bad()], release=release)
    assert cancelled.is_set() and released == ["ok"]
    assert await gather_all([ok(), ok()]) == ["ok", "ok"]
