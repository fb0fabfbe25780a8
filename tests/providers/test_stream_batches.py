"""`Provider.stream_batches`: the events one upstream read brought travel together, in order,
and a failure among them comes after the chunks before it, as one chunk at a time would."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from llmmux.errors import UpstreamError
from llmmux.providers.mock_transport import MockReply
from llmmux.types import ChatChunk

from .test_http_provider import chat_request, provider_for

CHAT_EVENT = b'data: {"id":"c","model":"gpt-4o","created":1,"choices":[{"index":0,"delta":{"content":"%s"}}]}\n\n'
ANNOTATION = b'data: {"id":"","model":"","created":0,"choices":[],"prompt_filter_results":[]}\n\n'


def chat_events(*texts: str) -> bytes:
    return b"".join(CHAT_EVENT % t.encode() for t in texts)


def anthropic_event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode({"type": name, **data}) + b"\n\n"


ANTHROPIC_START = anthropic_event(
    "message_start", {"message": {"id": "m", "model": "claude-sonnet-4-5", "usage": {"input_tokens": 3}}}
) + anthropic_event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})


def anthropic_text(*texts: str) -> bytes:
    return b"".join(
        anthropic_event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}}) for t in texts
    )


ANTHROPIC_END = (
    anthropic_event("content_block_stop", {"index": 0})
    + anthropic_event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}})
    + anthropic_event("message_stop", {})
)


async def batches_of(kind: str, reads: list[bytes]) -> list[list[ChatChunk]]:
    provider, _ = provider_for(kind, lambda _: MockReply(200, chunks=reads))
    request = chat_request(kind, stream=True)
    return [batch async for batch in provider.stream_batches(request, request.model)]


def texts(batches: list[list[ChatChunk]]) -> list[list[str | None]]:
    return [[c.choices[0].delta.content if c.choices else None for c in batch] for batch in batches]


async def test_openai_events_of_one_read_form_one_batch() -> None:
    reads = [chat_events("a", "b", "c"), chat_events("d")[:20], chat_events("d")[20:] + b"data: [DONE]\n\n"]
    batches = await batches_of("openai", reads)
    # A read holding only part of an event makes no batch; the one that completes it does.
    assert texts(batches) == [["a", "b", "c"], ["d"]]


async def test_anthropic_events_of_one_read_form_one_batch() -> None:
    batches = await batches_of("anthropic", [ANTHROPIC_START + anthropic_text("a", "b"), ANTHROPIC_END])
    assert texts(batches) == [["a", "b"], [None, None]]  # the finish and the usage-only chunk
    assert batches[1][-1].usage is not None and batches[1][-1].usage.completion_tokens == 2


async def test_nothing_after_the_last_event_is_read() -> None:
    batches = await batches_of("openai", [chat_events("a") + b"data: [DONE]\n\n" + chat_events("late")])
    assert texts(batches) == [["a"]]


@pytest.mark.parametrize(
    ("kind", "reads"),
    [
        ("openai", [chat_events("a", "b") + b'data: {"error": {"message": "boom"}}\n\n']),
        ("anthropic", [ANTHROPIC_START + anthropic_text("a", "b") + b"event: error\ndata: {not json\n\n"]),
    ],
)
async def test_a_failure_inside_a_read_comes_after_the_chunks_before_it(kind: str, reads: list[bytes]) -> None:
    provider, _ = provider_for(kind, lambda _: MockReply(200, chunks=reads))
    request = chat_request(kind, stream=True)
    batches = provider.stream_batches(request, request.model)
    assert texts([await anext(batches)]) == [["a", "b"]]
    with pytest.raises(UpstreamError) as failed:
        await anext(batches)
    assert failed.value.message.startswith(kind)


async def test_azure_drops_its_annotations_inside_a_batch_and_never_sends_an_empty_one() -> None:
    reads = [ANNOTATION, ANNOTATION + chat_events("a") + ANNOTATION + chat_events("b"), b"data: [DONE]\n\n"]
    assert texts(await batches_of("azure", reads)) == [["a", "b"]]


async def test_a_provider_that_does_not_batch_sends_one_chunk_a_batch() -> None:
    lines = b"".join(
        msgspec.json.encode({"model": "llama3.2", "message": {"role": "assistant", "content": t}, "done": False})
        + b"\n"
        for t in ("a", "b")
    )
    end = msgspec.json.encode({"model": "llama3.2", "message": {"role": "assistant", "content": ""}, "done": True})
    batches = await batches_of("ollama", [lines + end + b"\n"])
    assert texts(batches)[:2] == [["a"], ["b"]]
