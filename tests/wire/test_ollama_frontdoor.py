"""Serving Ollama clients: their /api/chat and /api/generate bodies in, Ollama JSON and NDJSON out.

Outputs are also parsed with the official `ollama` client's own response models.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from ollama._types import ChatResponse as OllamaChatResponse
from ollama._types import GenerateResponse as OllamaGenerateResponse

from llmmux.errors import AllAttemptsFailed, Attempt, InvalidRequest, UpstreamTimeout
from llmmux.types import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmmux.wire import ollama as upstream_wire
from llmmux.wire import ollama_frontdoor as wire
from llmmux.wire import openai as openai_wire

PNG = "iVBORw0KGgoAAAANSUhEUgAAAG0AAABmCAYAAADBPx+VAAAACXBIWXMAAAsTAAALEwEAmpwYAAAAAXNSR0IArs4c6QAAAARnQU1BAACxjwv8YQUA"
JPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5"


def clock(*ticks: int) -> Any:
    """A nanosecond clock that returns the given readings in turn."""
    readings: Iterator[int] = iter(ticks)
    return lambda: next(readings)


# -- requests --


def test_a_chat_body_becomes_a_canonical_request() -> None:
    body = {
        "model": "llama3.2",
        "messages": [
            {"role": "System", "content": "be brief"},
            {"role": "user", "content": "what is in this image?", "images": [PNG, JPEG]},
        ],
        "format": "json",
        "options": {
            "temperature": 0,
            "top_p": 0.9,
            "top_k": 20,
            "seed": 42,
            "num_predict": 100,
            "stop": "user:",
            "presence_penalty": 1.5,
            "frequency_penalty": 1.0,
            "num_ctx": 1024,
            "mirostat": 1,
        },
        "keep_alive": "5m",
        "think": True,
    }
    request = wire.decode_chat_request(body)
    assert (request.model, request.stream, request.client_wire) == ("llama3.2", True, "ollama")
    assert request.passthrough is not None and request.passthrough.body == body
    assert (request.temperature, request.top_p, request.top_k, request.seed, request.max_tokens, request.stop) == (
        0,
        0.9,
        20,
        42,
        100,
        ["user:"],
    )
    assert (request.presence_penalty, request.frequency_penalty) == (1.5, 1.0)
    assert request.response_format == {"type": "json_object"}
    assert request.extra == {"keep_alive": "5m", "think": True, "num_ctx": 1024, "options": {"mirostat": 1}}
    system, user = request.messages
    assert (system.role, system.content) == ("system", "be brief")
    assert user.content == [
        TextPart("what is in this image?"),
        ImagePart(url=f"data:image/png;base64,{PNG}"),
        ImagePart(url=f"data:image/jpeg;base64,{JPEG}"),
    ]


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff\xe0", "image/jpeg"),
        (b"GIF89a", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "image/png"),
    ],
)
def test_image_media_types_are_read_from_their_first_bytes(head: bytes, media_type: str) -> None:
    b64 = base64.b64encode(head + b"\x00" * 16).decode()
    request = wire.decode_chat_request({"model": "m", "messages": [{"role": "user", "content": "", "images": [b64]}]})
    assert request.messages[0].content == [ImagePart(url=f"data:{media_type};base64,{b64}")]


def test_a_schema_format_and_unlimited_num_predict_translate() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    request = wire.decode_chat_request(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "format": schema,
            "options": {"num_predict": -1},
            "stream": False,
        }
    )
    assert request.response_format == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert (request.max_tokens, request.stream) == (None, False)


def test_tool_results_are_matched_to_the_calls_they_answer() -> None:
    body = {
        "model": "m",
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}],
        "messages": [
            {"role": "user", "content": "weather and time?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "get_time", "arguments": {}}},
                ],
            },
            {"role": "tool", "tool_name": "get_time", "content": "noon"},
            {"role": "tool", "content": "22C"},
        ],
    }
    request = wire.decode_chat_request(body)
    assistant, time_result, weather_result = request.messages[1:]
    assert assistant.tool_calls == [
        ToolCall(id="call_1_0", name="get_weather", arguments='{"city":"Paris"}'),
        ToolCall(id="call_1_1", name="get_time", arguments="{}"),
    ]
    assert (time_result.tool_call_id, time_result.name) == ("call_1_1", "get_time")
    assert weather_result.tool_call_id == "call_1_0"  # the one left unanswered
    assert request.tools is not None and request.tools[0].name == "get_weather"
    # What an OpenAI upstream receives links each result to its call by id.
    sent = json.loads(openai_wire.encode_chat_request(request, "gpt-4o", stream=False))
    assert [m.get("tool_call_id") for m in sent["messages"]] == [None, None, "call_1_1", "call_1_0"]
    assert sent["messages"][1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}


def test_an_ollama_body_reaches_an_ollama_upstream_unchanged_but_for_model_and_stream() -> None:
    body = {
        "model": "chat-main",
        "messages": [{"role": "user", "content": "hi", "images": [PNG]}],
        "options": {"mirostat": 2, "num_ctx": 4096},
        "keep_alive": -1,
    }
    request = wire.decode_chat_request(body)
    sent = json.loads(upstream_wire.encode_chat_request(request, "llama3.2", stream=True))
    assert sent == {**body, "model": "llama3.2", "stream": True}


@pytest.mark.parametrize(
    ("body", "param", "text"),
    [
        ([], None, "JSON object"),
        ({"messages": []}, "model", "'model' is required"),
        ({"model": "m", "messages": []}, "messages", "at least one message"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "Invalid role 'wizard'"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content", "Expected `str | null`"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "options": {"temperature": "hot"}},
            "options.temperature",
            "Invalid value for 'options.temperature'",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "format": "yaml"}, "format", "JSON schema"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x", "images": ["not base64!"]}]},
            "messages[0].images[0]",
            "base64",
        ),
    ],
)
def test_bad_chat_bodies_get_clear_errors_naming_the_field(body: Any, param: str | None, text: str) -> None:
    with pytest.raises(InvalidRequest, match=text.replace("[", r"\[").replace("|", r"\|")) as error:
        wire.decode_chat_request(body)
    assert error.value.param == param


def test_a_generate_body_becomes_system_and_user_messages() -> None:
    body = {
        "model": "codellama:code",
        "prompt": "def compute_gcd(a, b):",
        "suffix": "    return result",
        "system": "You write Python.",
        "images": [PNG],
        "options": {"temperature": 0},
        "raw": True,
    }
    request = wire.decode_generate_request(body)
    system, user = request.messages
    assert (system.role, system.content) == ("system", "You write Python.")
    assert user.content == [TextPart("def compute_gcd(a, b):"), ImagePart(url=f"data:image/png;base64,{PNG}")]
    assert (request.temperature, request.stream, request.client_wire) == (0, True, wire.GENERATE_WIRE)
    assert request.extra == {"suffix": "    return result", "raw": True}
    # A generate body is not a chat body: an Ollama upstream gets a translated /api/chat request.
    sent = json.loads(upstream_wire.encode_chat_request(request, "codellama:code", stream=False))
    assert sent["messages"][1] == {"role": "user", "content": "def compute_gcd(a, b):", "images": [PNG]}
    with pytest.raises(InvalidRequest, match="'prompt' is required"):
        wire.decode_generate_request({"model": "llama3.2"})


# -- replies --

RESPONSE = ChatResponse(
    id="chatcmpl-1",
    model="gpt-4o-2024-08-06",
    created=1721680408,
    choices=[
        Choice(
            message=Message(
                role="assistant",
                content="",
                reasoning="look it up",
                tool_calls=[ToolCall(id="call_9", name="get_weather", arguments='{"city": "Paris"}')],
            ),
            finish_reason="tool_calls",
        )
    ],
    usage=Usage(prompt_tokens=122, completion_tokens=33, total_tokens=155),
)


def test_a_canonical_response_becomes_an_ollama_chat_reply() -> None:
    timing = wire.Timing(clock(1_000, 5_000_000_000))
    body = json.loads(wire.encode_chat_response(RESPONSE, "chat-main", timing))
    assert body == {
        "model": "chat-main",
        "created_at": "2024-07-22T20:33:28.000000Z",
        "message": {
            "role": "assistant",
            "content": "",
            "thinking": "look it up",
            "tool_calls": [
                {"id": "call_9", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        "done": True,
        "done_reason": "stop",
        "total_duration": 4_999_999_000,
        "prompt_eval_count": 122,
        "prompt_eval_duration": 4_999_999_000,
        "eval_count": 33,
    }
    parsed = OllamaChatResponse(**body)
    assert parsed.message.tool_calls and parsed.message.tool_calls[0].function.arguments == {"city": "Paris"}


def test_an_ollama_upstreams_reply_passes_through_with_the_public_name() -> None:
    data = (
        b'{"model":"llama3.2","created_at":"2023-12-12T14:13:43.416799Z","message":{"role":"assistant",'
        b'"content":"Hi"},"done":true,"total_duration":5191566416,"eval_count":298}'
    )
    response = upstream_wire.decode_chat_response(data)
    assert wire.encode_chat_response(response, "chat-main") == data.replace(b'"llama3.2"', b'"chat-main"')


def test_a_canonical_response_becomes_an_ollama_generate_reply() -> None:
    response = ChatResponse(
        id="x",
        model="m",
        created=1721680408,
        usage=Usage(prompt_tokens=17, completion_tokens=63),
        choices=[Choice(message=Message(role="assistant", content="  return b"), finish_reason="length")],
    )
    body = json.loads(wire.encode_generate_response(response, "codellama:code", wire.Timing(clock(0, 10))))
    assert (body["response"], body["done"], body["done_reason"], body["eval_count"]) == (
        "  return b",
        True,
        "length",
        63,
    )
    assert OllamaGenerateResponse(**body).response == "  return b"


def chunk(delta: Delta, finish: str | None = None, usage: Usage | None = None, index: int = 0) -> ChatChunk:
    choices = [ChunkChoice(index=index, delta=delta, finish_reason=finish)] if delta or finish else []  # type: ignore[arg-type]
    return ChatChunk(id="c", model="gpt-4o", created=1, choices=choices, usage=usage)


def test_a_stream_becomes_ndjson_with_tool_calls_sent_whole_and_a_final_done_line() -> None:
    encoder = wire.StreamEncoder("chat-main", timing=wire.Timing(clock(0, 100, 900)), now=lambda: 1721680408.5)
    chunks = [
        chunk(Delta(role="assistant", content="")),
        chunk(Delta(content="Checking", reasoning=None)),
        chunk(Delta(tool_calls=[ToolCallDelta(index=0, id="call_1", name="get_weather", arguments='{"ci')])),
        chunk(Delta(tool_calls=[ToolCallDelta(index=0, arguments='ty": "Paris"}')])),
        chunk(Delta(content="ignored"), index=1),
        chunk(Delta(), finish="tool_calls"),
        chunk(Delta(), usage=Usage(prompt_tokens=10, completion_tokens=4)),
    ]
    data = b"".join(encoder.encode(c) for c in chunks) + encoder.close()
    lines = [json.loads(line) for line in data.splitlines()]
    assert [line["message"] for line in lines] == [
        {"role": "assistant", "content": "Checking"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Paris"}}}
            ],
        },
        {"role": "assistant", "content": ""},
    ]
    assert [line["done"] for line in lines] == [False, False, True]
    assert {line["created_at"] for line in lines} == {"2024-07-22T20:33:28.500000Z"}
    assert {line["model"] for line in lines} == {"chat-main"}
    final = lines[-1]
    assert (final["done_reason"], final["prompt_eval_count"], final["eval_count"]) == ("stop", 10, 4)
    assert (final["total_duration"], final["prompt_eval_duration"], final["eval_duration"]) == (900, 100, 800)
    for line in lines:
        OllamaChatResponse(**line)


def test_a_generate_stream_uses_response_and_thinking_fields() -> None:
    encoder = wire.StreamEncoder("m", generate=True, timing=wire.Timing(clock(0, 5, 9)), now=lambda: 0.0)
    data = encoder.encode(chunk(Delta(reasoning="hmm"))) + encoder.encode(chunk(Delta(content="The"), "length"))
    data += encoder.close()
    lines = [json.loads(line) for line in data.splitlines()]
    assert [(line.get("thinking"), line["response"], line["done"]) for line in lines] == [
        ("hmm", "", False),
        (None, "The", False),
        (None, "", True),
    ]
    assert lines[-1]["done_reason"] == "length" and "message" not in lines[-1]
    for line in lines:
        OllamaGenerateResponse(**line)


def test_errors_take_ollamas_shape() -> None:
    assert json.loads(wire.encode_error(InvalidRequest("model is required"))) == {"error": "model is required"}
    failed = AllAttemptsFailed("chat-main", [Attempt("local", "llama3.2", UpstreamTimeout("local timed out"), 1.0)])
    assert "local/llama3.2: timeout" in json.loads(wire.encode_error(failed))["error"]
