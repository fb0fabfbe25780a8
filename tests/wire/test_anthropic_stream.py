"""llmmux.wire.anthropic streams: Anthropic events -> chunks, chunks -> Anthropic events, and back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmmux.errors import (
    ContextLengthExceeded,
    StreamInterrupted,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamServerError,
)
from llmmux.types import ChatChunk, ChunkChoice, Delta, ToolCallDelta, Usage
from llmmux.wire import anthropic as wire
from llmmux.wire.sse import SSEParser
from support.anthropic_sdk import accumulate_stream
from upstreams.anthropic_server import DOCUMENTED_STREAM, AnthropicReply, render_events, reply, sse, tool_call

REQUEST = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "Weather?"}]}


def events_bytes(answer: AnthropicReply) -> bytes:
    return b"".join(sse(e["type"], e) for e in render_events(REQUEST, answer))


def translate(data: bytes, *, split: int = 0) -> list[ChatChunk]:
    """Run bytes through the SSE parser and a translator, `split` bytes at a time (0: all at once)."""
    parser, translator = SSEParser(), wire.StreamTranslator("claude", created=1700000000)
    pieces = [data[i : i + split] for i in range(0, len(data), split)] if split else [data]
    chunks = []
    for piece in pieces:
        for name, payload in parser.feed(piece):
            chunk = translator.feed(name, payload)
            if chunk is not None:
                chunks.append(chunk)
    assert translator.finished
    return chunks


def content(chunks: list[ChatChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def tool_calls(chunks: list[ChatChunk]) -> dict[int, dict[str, str]]:
    """Tool call deltas assembled as an OpenAI client assembles them."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for t in choice.delta.tool_calls or ():
                call = calls.setdefault(t.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += t.id or ""
                call["name"] += t.name or ""
                call["arguments"] += t.arguments or ""
    return calls


# -- Anthropic events -> canonical chunks --


@pytest.mark.parametrize("split", [0, 1, 7])
def test_documented_stream_translates_in_any_chunking(split: int) -> None:
    chunks = translate(DOCUMENTED_STREAM, split=split)
    assert content(chunks) == "Hello!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.role for c in chunks[1:] if c.choices] == [None, None]
    assert [c.choices[0].finish_reason for c in chunks if c.choices] == [None, None, "stop"]
    assert {(c.id, c.model, c.created) for c in chunks} == {
        ("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "claude-opus-4-6", 1700000000)
    }
    final = chunks[-1]
    assert final.choices == []
    assert final.usage == Usage(prompt_tokens=25, completion_tokens=15, total_tokens=40)


def test_chunks_carry_every_upstream_frame_exactly() -> None:
    chunks = translate(DOCUMENTED_STREAM, split=5)
    assert b"".join(c.raw or b"" for c in chunks) == DOCUMENTED_STREAM
    assert {c.raw_wire for c in chunks} == {"anthropic"}


def test_parallel_tool_calls_are_numbered_by_block_order() -> None:
    answer = reply(
        "Checking both.",
        tool_calls=[
            tool_call("get_weather", {"city": "Paris"}, id="toolu_01A"),
            tool_call("get_time", {"tz": "Europe/Rome"}, id="toolu_01B"),
        ],
    )
    chunks = translate(events_bytes(answer))
    assert content(chunks) == "Checking both."
    assert tool_calls(chunks) == {
        0: {"id": "toolu_01A", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "toolu_01B", "name": "get_time", "arguments": '{"tz": "Europe/Rome"}'},
    }
    starts = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or () if t.id]
    assert [(t.index, t.arguments) for t in starts] == [(0, ""), (1, "")]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_thinking_streams_as_reasoning_and_signatures_stay_in_raw() -> None:
    chunks = translate(events_bytes(reply("42.", thinking="Six times seven.")))
    assert "".join(c.choices[0].delta.reasoning or "" for c in chunks if c.choices) == "Six times seven."
    assert content(chunks) == "42."
    assert chunks[0].choices[0].delta == Delta(role="assistant", reasoning="Six ti")
    assert b"signature_delta" in b"".join(c.raw or b"" for c in chunks)


def test_usage_counts_cache_and_later_cumulative_reports() -> None:
    events: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "c",
                "usage": {
                    "input_tokens": 5,
                    "output_tokens": 1,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 20,
                },
            },
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 9, "input_tokens": 6},
        },
        {"type": "message_stop"},
    ]
    chunks = translate(b"".join(sse(e["type"], e) for e in events))
    assert chunks[0].choices == [ChunkChoice(delta=Delta(role="assistant"), finish_reason="length")]
    assert chunks[1].usage == Usage(
        prompt_tokens=126, completion_tokens=9, total_tokens=135, cached_tokens=100, cache_write_tokens=20
    )


def test_unknown_events_and_blocks_are_ignored() -> None:
    events = render_events(REQUEST, reply("Hi"))
    events.insert(
        1,
        {
            "type": "content_block_start",
            "index": 9,
            "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
        },
    )
    events.insert(
        2, {"type": "content_block_delta", "index": 9, "delta": {"type": "input_json_delta", "partial_json": "{}"}}
    )
    events.insert(3, {"type": "some_future_event", "payload": 1})
    chunks = translate(b"".join(sse(e["type"], e) for e in events))
    assert content(chunks) == "Hi"
    assert tool_calls(chunks) == {}


@pytest.mark.parametrize(
    ("kind", "cls", "status"),
    [
        ("overloaded_error", UpstreamServerError, 529),
        ("api_error", UpstreamServerError, 500),
        ("rate_limit_error", UpstreamRateLimited, 429),
    ],
)
def test_error_events_raise_classified_errors(kind: str, cls: type, status: int) -> None:
    translator = wire.StreamTranslator("claude")
    payload = json.dumps({"type": "error", "error": {"type": kind, "message": "Overloaded"}}).encode()
    with pytest.raises(UpstreamError) as caught:
        translator.feed(b"error", payload)
    assert type(caught.value) is cls
    assert caught.value.upstream_status == status
    assert caught.value.retryable
    assert f"claude sent an error event: {kind}: Overloaded" == caught.value.message


def test_prompt_too_long_error_event_is_a_context_length_error() -> None:
    payload = b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 9 > 5"}}'
    with pytest.raises(ContextLengthExceeded):
        wire.StreamTranslator("claude").feed(b"error", payload)


def test_nothing_is_emitted_before_the_first_content() -> None:
    # So an error event right after message_start still fails the attempt before the client sees bytes.
    translator = wire.StreamTranslator("claude")
    start, block_start, ping = render_events(REQUEST, reply("Hi"))[:3]
    for event in (start, block_start, ping):
        assert translator.feed(event["type"].encode(), json.dumps(event).encode()) is None


@pytest.mark.parametrize("data", [b"{not json", b'{"no_type": 1}', b'{"type":"content_block_delta","index":"x"}'])
def test_malformed_events_are_reported(data: bytes) -> None:
    with pytest.raises(wire.MalformedReply):
        wire.StreamTranslator("claude").feed(b"", data)


# -- canonical chunks -> Anthropic events --


def chunk(delta: Delta | None = None, finish: Any = None, usage: Usage | None = None) -> ChatChunk:
    choices = [] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)]
    return ChatChunk(id="chatcmpl-7", model="gpt-4o", created=1, choices=choices, usage=usage)


def encode_all(chunks: list[ChatChunk], public: str = "claude-public") -> bytes:
    encoder = wire.StreamEncoder(public)
    return b"".join(encoder.encode(c) for c in chunks) + encoder.finish()


OPENAI_STYLE = [
    chunk(Delta(role="assistant", content="")),
    chunk(Delta(reasoning="Plan.")),
    chunk(Delta(content="Let me ")),
    chunk(Delta(content="check.")),
    chunk(Delta(tool_calls=[ToolCallDelta(index=0, id="call_A", name="get_weather", arguments="")])),
    chunk(Delta(tool_calls=[ToolCallDelta(index=0, arguments='{"city":')])),
    chunk(Delta(tool_calls=[ToolCallDelta(index=0, arguments='"Oslo"}')])),
    chunk(Delta(tool_calls=[ToolCallDelta(index=1, id="call_B", name="get_time", arguments='{"tz":"UTC"}')])),
    chunk(Delta(), finish="tool_calls"),
    chunk(usage=Usage(prompt_tokens=300, completion_tokens=40, total_tokens=340, cached_tokens=200)),
]


def test_encoded_stream_is_what_the_sdk_accumulates() -> None:
    message, kinds = accumulate_stream(encode_all(OPENAI_STYLE))
    assert (message.id, message.model, message.stop_reason) == ("msg_chatcmpl-7", "claude-public", "tool_use")
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    thinking, text, first, second = message.content
    assert (thinking.thinking, text.text) == ("Plan.", "Let me check.")  # type: ignore[union-attr]
    assert (first.id, first.name, first.input) == ("call_A", "get_weather", {"city": "Oslo"})  # type: ignore[union-attr]
    assert (second.id, second.input) == ("call_B", {"tz": "UTC"})  # type: ignore[union-attr]
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (100, 200, 40)
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_encoded_event_sequence() -> None:
    events = [(name.decode(), json.loads(data)) for name, data in SSEParser().feed(encode_all(OPENAI_STYLE[:4]))]
    shapes = [
        (name, e.get("index"), (e.get("delta") or e.get("content_block") or {}).get("type")) for name, e in events
    ]
    assert shapes == [
        ("message_start", None, None),
        ("content_block_start", 0, "thinking"),
        ("content_block_delta", 0, "thinking_delta"),
        ("content_block_stop", 0, None),
        ("content_block_start", 1, "text"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_delta", 1, "text_delta"),
        ("content_block_stop", 1, None),
        ("message_delta", None, None),
        ("message_stop", None, None),
    ]
    assert all(name == e["type"] for name, e in events)
    assert events[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


def test_empty_stream_still_frames_a_whole_message() -> None:
    message, _ = accumulate_stream(wire.StreamEncoder("p").finish())
    assert (message.content, message.stop_reason, message.model) == ([], "end_turn", "p")


def test_error_event_after_the_stream_started() -> None:
    data = wire.StreamEncoder.error(StreamInterrupted("claude failed mid-stream: boom"))
    assert SSEParser().feed(data) == [
        (b"error", b'{"type":"error","error":{"type":"api_error","message":"claude failed mid-stream: boom"}}')
    ]


def test_anthropic_upstream_frames_pass_through_with_public_model() -> None:
    encoded = encode_all(translate(DOCUMENTED_STREAM, split=3), public="claude-public")
    assert encoded == DOCUMENTED_STREAM.replace(b'"claude-opus-4-6"', b'"claude-public"')


# -- round trip --


def test_stream_round_trips_to_the_same_message() -> None:
    calls = [
        tool_call("get_weather", {"city": "Paris"}, id="toolu_01A"),
        tool_call("get_weather", {"city": "Rome"}, id="toolu_01B"),
    ]
    original = events_bytes(reply("Two calls.", thinking="Hmm.", tool_calls=calls))
    chunks = translate(original, split=11)
    for c in chunks:
        c.raw = None  # as if another backend had produced them: forces the canonical encoder
    expected, _ = accumulate_stream(original)
    got, _ = accumulate_stream(encode_all(chunks, public="claude-sonnet-4-5"))
    assert got.content[0].thinking == expected.content[0].thinking  # type: ignore[union-attr]
    assert [b.model_dump(exclude={"signature"}) for b in got.content] == [
        b.model_dump(exclude={"signature"}) for b in expected.content
    ]
    assert (got.stop_reason, got.usage.input_tokens, got.usage.output_tokens) == (
        expected.stop_reason,
        expected.usage.input_tokens,
        expected.usage.output_tokens,
    )
