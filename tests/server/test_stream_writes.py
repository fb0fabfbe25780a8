"""`send_stream`: what one upstream read brought leaves in one body message (one trip through
the ASGI layers, one socket write), and the record counts every chunk however the stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmmux.errors import UpstreamServerError
from llmmux.events import CallContext, RequestRecord
from llmmux.routing import ChatStream
from llmmux.server.http import SSE_HEADERS, Request
from llmmux.server.streaming import send_stream
from llmmux.types import ChatChunk, ChunkChoice, Delta, Usage
from llmmux.wire.sse import frame


def chunk(text: str | None = None, usage: Usage | None = None) -> ChatChunk:
    choices = [ChunkChoice(delta=Delta(content=text))] if text is not None else []
    return ChatChunk(id="c", model="m", created=1, choices=choices, usage=usage)


class Client:
    """An ASGI peer: records the messages the app sends; never disconnects."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def send(self, message: Any) -> None:
        self.messages.append(message)

    async def receive(self) -> Any:
        await asyncio.Event().wait()

    @property
    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.messages if m["type"] == "http.response.body"]


async def stream_to_client(reads: list[list[ChatChunk]], failure: Exception | None = None) -> tuple[Client, ChatStream]:
    async def upstream() -> AsyncIterator[list[ChatChunk]]:
        for batch in reads[1:]:
            yield batch
        if failure is not None:
            raise failure

    ended: list[object] = []
    record = RequestRecord(CallContext(), "m", stream=True, provider="up", model="m")
    stream = ChatStream(upstream(), reads[0], "m", None, record, stall_s=5.0, on_end=lambda s, e: ended.append(e))
    client = Client()
    request = Request({"type": "http", "headers": []}, client.receive, 1 << 20, "r1")
    await send_stream(
        stream,
        request,
        client.send,
        SSE_HEADERS,
        encode=lambda c: frame(c.choices[0].delta.content.encode()) if c.choices else b"",  # type: ignore[union-attr]
        finish=lambda: b"data: [DONE]\n\n",
        fail=lambda exc: frame(b"failed"),
    )
    assert len(ended) == 1
    return client, stream


async def test_the_chunks_of_one_read_leave_in_one_body_message() -> None:
    reads = [
        [chunk("a")],
        [chunk("b"), chunk("c"), chunk("d")],
        [chunk(usage=Usage(prompt_tokens=2, completion_tokens=4))],
    ]
    client, stream = await stream_to_client(reads)
    # The usage-only chunk encodes to nothing: no empty body message for it.
    assert client.bodies == [b"data: a\n\n", b"data: b\n\ndata: c\n\ndata: d\n\n", b"data: [DONE]\n\n"]
    assert stream.record.output_chars == 4 and stream.record.usage == Usage(prompt_tokens=2, completion_tokens=4)
    assert stream.record.status == 200


async def test_a_failure_after_a_batch_sends_the_batch_then_the_error() -> None:
    reads = [[chunk("a")], [chunk("b"), chunk("c")]]
    client, stream = await stream_to_client(reads, UpstreamServerError("boom", provider="up"))
    assert client.bodies == [b"data: a\n\n", b"data: b\n\ndata: c\n\n", b"data: failed\n\n"]
    assert (stream.record.status, stream.record.error_kind, stream.record.output_chars) == (
        502,
        "stream_interrupted",
        3,
    )


async def test_iterating_by_chunk_still_yields_each_chunk_in_order() -> None:
    async def upstream() -> AsyncIterator[list[ChatChunk]]:
        yield [chunk("b"), chunk("c")]

    record = RequestRecord(CallContext(), "m", stream=True, provider="up", model="m")
    stream = ChatStream(upstream(), [chunk("a")], "m", None, record, stall_s=None, on_end=lambda s, e: None)
    assert [c.choices[0].delta.content async for c in stream] == ["a", "b", "c"]
    assert stream.finished


@pytest.mark.parametrize("stall_s", [None, 5.0])
async def test_batches_and_chunks_agree_on_what_the_record_counts(stall_s: float | None) -> None:
    async def upstream() -> AsyncIterator[list[ChatChunk]]:
        yield [chunk("bb"), chunk("ccc")]

    record = RequestRecord(CallContext(), "m", stream=True, provider="up", model="m")
    stream = ChatStream(upstream(), [chunk("a")], "m", None, record, stall_s=stall_s, on_end=lambda s, e: None)
    assert [[c.choices[0].delta.content for c in b] async for b in stream.batches()] == [["a"], ["bb", "ccc"]]
    assert record.output_chars == 6 and stream.finished


async def test_the_record_counts_the_chunks_handed_on_not_the_ones_read_ahead() -> None:
    # A client that leaves mid-read is charged (estimated) for what it was given, as when
    # chunks came one read each: the rest of a read, usage included, never reached it.
    async def upstream() -> AsyncIterator[list[ChatChunk]]:
        yield [chunk("bb"), chunk(usage=Usage(prompt_tokens=2, completion_tokens=9))]

    record = RequestRecord(CallContext(), "m", stream=True, provider="up", model="m")
    stream = ChatStream(upstream(), [chunk("a"), chunk("dd")], "m", None, record, stall_s=5.0, on_end=lambda s, e: None)
    counted = []
    for _ in range(3):
        await stream.__anext__()
        counted.append(record.output_chars)
    await stream.aclose()
    assert counted == [1, 3, 5] and record.usage is None and record.status == 499
