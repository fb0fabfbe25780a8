"""llmmux.wire.responses: Responses requests -> chat, chat replies and chunks -> Responses objects and events."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from llmmux.errors import InvalidRequest, StreamInterrupted, UpstreamRateLimited
from llmmux.types import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    ImagePart,
    Message,
    OtherPart,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from llmmux.wire import responses as wire
from llmmux.wire.sse import SSEParser

WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
ID = re.compile(r"\b(resp|msg|fc|call|rs|ctc)_[0-9a-f]{48}\b")


def decode(**body: Any) -> wire.ResponsesRequest:
    return wire.decode_request({"model": "m", "input": "hi", **body})


def refused(body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        wire.decode_request({"model": "m", **body})
    return caught.value


def normalized(value: Any) -> Any:
    """Random ids as `<prefix>_1`, `_2`... by first appearance; timestamps as 0."""
    seen: dict[str, str] = {}

    def name(match: re.Match[str]) -> str:
        prefix = match.group(1)
        if match.group(0) not in seen:
            seen[match.group(0)] = f"{prefix}_{sum(1 for v in seen.values() if v.startswith(prefix + '_')) + 1}"
        return seen[match.group(0)]

    text = ID.sub(name, json.dumps(value))
    text = re.sub(r'"(created_at|completed_at)": \d+', r'"\1": 0', text)
    return json.loads(text)


def events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    parsed = [(name.decode(), json.loads(payload)) for name, payload in SSEParser().feed(data)]
    for name, payload in parsed:
        assert name == payload["type"]  # the SSE event name is the payload's type
    return parsed


def chunk(
    content: str | None = None,
    *,
    calls: list[ToolCallDelta] | None = None,
    finish: str | None = None,
    usage: Usage | None = None,
) -> ChatChunk:
    choices = (
        []
        if usage is not None and content is None and calls is None and finish is None
        else [ChunkChoice(delta=Delta(content=content, tool_calls=calls), finish_reason=finish)]
    )  # type: ignore[arg-type]
    return ChatChunk(id="c1", model="up", created=1, choices=choices, usage=usage)


# -- requests --


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    request = decode(instructions="Be brief.", max_output_tokens=50, temperature=0.2, top_p=0.9, user="u1")
    chat = wire.chat_request(request, [])
    assert chat.messages == [Message(role="system", content="Be brief."), Message(role="user", content="hi")]
    assert (chat.model, chat.max_tokens, chat.temperature, chat.top_p, chat.user) == ("m", 50, 0.2, 0.9, "u1")
    assert chat.include_usage and request.store  # OpenAI stores by default
    assert chat.client_wire == "openai_responses" and chat.passthrough is not None
    assert chat.passthrough.body["instructions"] == "Be brief."
    assert chat.extra == {} and chat.hosted_tools is None


def test_input_items_become_chat_messages() -> None:
    items: list[Any] = [
        {"role": "developer", "content": "Use tools."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"},
            ],
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call", "call_id": "call_2", "name": "get_weather", "arguments": '{"city":"Lima"}'},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call_output", "call_id": "call_1", "output": "5C"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "20C"}]},
    ]
    assert wire.decode_request({"model": "m", "input": items}).input == [
        Message(role="developer", content="Use tools."),
        Message(
            role="user",
            content=[
                TextPart("What is this?"),
                ImagePart("data:image/png;base64,AAAA", "low"),
                OtherPart(
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
                ),
            ],
        ),
        Message(
            role="assistant",
            content="Checking.",
            tool_calls=[
                ToolCall("call_1", "get_weather", '{"city":"Oslo"}'),
                ToolCall("call_2", "get_weather", '{"city":"Lima"}'),
            ],
        ),
        Message(role="tool", tool_call_id="call_1", content="5C"),
        Message(role="tool", tool_call_id="call_2", content="20C"),
    ]


def test_a_continuation_puts_the_history_between_the_instructions_and_the_input() -> None:
    history = [Message(role="user", content="first"), Message(role="assistant", content="one")]
    chat = wire.chat_request(decode(instructions="New rules.", previous_response_id="resp_x"), history)
    assert [m.content for m in chat.messages] == ["New rules.", "first", "one", "hi"]


def test_function_tools_tool_choice_and_parallel_calls() -> None:
    chat = decode(
        tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False
    ).chat
    assert chat.tools == [
        Tool(name="get_weather", description="Weather in a city", strict=True, parameters=WEATHER["parameters"])
    ]
    assert chat.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert chat.extra == {"parallel_tool_calls": False}
    assert decode(tools=[WEATHER], tool_choice="required").chat.tool_choice == "required"


def test_allowed_tools_narrows_the_tools_offered() -> None:
    other = {**WEATHER, "name": "get_time"}
    chat = decode(
        tools=[WEATHER, other],
        tool_choice={"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "get_time"}]},
    ).chat
    assert [t.name for t in chat.tools or ()] == ["get_time"]
    assert chat.tool_choice == "required"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": True},
            {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True}},
        ),
    ],
)
def test_text_format_becomes_response_format(fmt: dict[str, Any], expected: Any) -> None:
    request = decode(text={"format": fmt})
    assert request.chat.response_format == expected
    assert request.echo["text"] == {"format": fmt}


def test_reasoning_effort_reaches_openai_format_backends() -> None:
    assert decode(reasoning={"effort": "low"}).chat.extra == {"reasoning_effort": "low"}


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": "x"}, "model", "model"),
        ({"model": "m"}, "input", "input"),
        ({"model": "m", "input": 3}, "input", "Invalid value"),
        ({"model": "m", "input": "x", "tools": [{"type": "namespace", "tools": []}]}, "tools[0].name", "namespace"),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "namespace", "name": "n", "tools": [{"type": "web_search"}]}],
            },
            "tools[0].tools[0].type",
            "function and custom",
        ),
        ({"model": "m", "input": "x", "tool_choice": {"mode": "auto"}}, "tool_choice", "tool_choice"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "previous_response_id"),
        ({"model": "m", "input": [{"type": "computer_call_output"}]}, "input[0].type", "not supported"),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role", "Invalid role"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
            "image_url",
        ),
        ({"model": "m", "input": [{"type": "function_call", "name": "f"}]}, "input[0]", "call_id"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}, "text.format", "schema"),
        ({"model": "m", "input": "x", "background": True}, "background", "background"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens", "at least 1"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str, words: str) -> None:
    if "model" not in body:
        with pytest.raises(InvalidRequest) as caught:
            wire.decode_request(body)
        error = caught.value
    else:
        error = refused({k: v for k, v in body.items() if k != "model"})
    assert (error.status, error.param) == (400, param)
    assert words in error.message


# -- responses --


def reply(message: Message, finish: str = "stop") -> ChatResponse:
    usage = Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17, cached_tokens=4)
    return ChatResponse(
        id="c1", model="up", created=1, usage=usage, choices=[Choice(message=message, finish_reason=finish)]
    )  # type: ignore[arg-type]


def test_a_text_reply_is_a_completed_response_echoing_the_request() -> None:
    request = decode(instructions="Be brief.", tools=[WEATHER], metadata={"k": "v"}, store=False)
    body, message, _ = wire.encode_response(
        wire.ResponseShell(request, "public"), reply(Message(role="assistant", content="Hello."))
    )
    assert normalized(body) == {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "completed_at": 0,
        "instructions": "Be brief.",
        "max_output_tokens": None,
        "max_tool_calls": None,
        "model": "public",
        "output": [
            {
                "id": "msg_1",
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hello."}],
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [WEATHER],
        "top_logprobs": 0,
        "top_p": None,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 17,
        },
        "user": None,
        "metadata": {"k": "v"},
    }
    assert message == Message(role="assistant", content="Hello.")


def test_tool_calls_are_function_call_items_after_the_text() -> None:
    calls = [ToolCall("call_a", "get_weather", '{"city":"Oslo"}')]
    body, message, _ = wire.encode_response(
        wire.ResponseShell(decode(), "m"), reply(Message(role="assistant", content="", tool_calls=calls), "tool_calls")
    )
    assert normalized(body["output"]) == [
        {
            "id": "fc_1",
            "type": "function_call",
            "status": "completed",
            "arguments": '{"city":"Oslo"}',
            "call_id": "call_a",
            "name": "get_weather",
        }
    ]
    assert message == Message(role="assistant", content=None, tool_calls=calls)


def test_a_reply_cut_at_max_tokens_is_incomplete() -> None:
    body, _, _ = wire.encode_response(
        wire.ResponseShell(decode(), "m"), reply(Message(role="assistant", content="Once upon"), "length")
    )
    assert (body["status"], body["incomplete_details"]) == ("incomplete", {"reason": "max_output_tokens"})
    assert body["output"][0]["status"] == "incomplete" and "completed_at" not in body


# -- streams --


def stream(chunks: list[ChatChunk], request: wire.ResponsesRequest | None = None) -> list[Any]:
    encoder = wire.StreamEncoder(wire.ResponseShell(request or decode(), "public"))
    data = encoder.start() + b"".join(encoder.encode(c) for c in chunks) + encoder.finish()
    found = events(data)
    assert [e["sequence_number"] for _, e in found] == list(range(len(found)))
    assert normalized(encoder.final) == normalized(found[-1][1]["response"])
    stripped: list[Any] = normalized([{k: v for k, v in e.items() if k != "sequence_number"} for _, e in found])
    return stripped


USAGE = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
TEXT_USAGE = {
    "input_tokens": 3,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 2,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 5,
}


def test_golden_text_stream() -> None:
    found = stream([chunk(""), chunk("Hel"), chunk("lo"), chunk(finish="stop"), chunk(usage=USAGE)])
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    at = {"item_id": "msg_1", "output_index": 0}
    done_item = {
        "id": "msg_1",
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{**part, "text": "Hello"}],
    }
    assert [e["type"] for e in found] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert found[0]["response"]["status"] == found[1]["response"]["status"] == "in_progress"
    assert found[0]["response"]["output"] == [] and found[0]["response"]["usage"] is None
    assert found[2:9] == [
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "msg_1", "type": "message", "status": "in_progress", "content": [], "role": "assistant"},
        },
        {"type": "response.content_part.added", **at, "content_index": 0, "part": part},
        {"type": "response.output_text.delta", **at, "content_index": 0, "delta": "Hel", "logprobs": []},
        {"type": "response.output_text.delta", **at, "content_index": 0, "delta": "lo", "logprobs": []},
        {"type": "response.output_text.done", **at, "content_index": 0, "text": "Hello", "logprobs": []},
        {"type": "response.content_part.done", **at, "content_index": 0, "part": {**part, "text": "Hello"}},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
    ]
    final = found[-1]["response"]
    assert (final["id"], final["status"], final["output"], final["usage"]) == (
        "resp_1",
        "completed",
        [done_item],
        TEXT_USAGE,
    )


def test_golden_stream_with_text_then_two_function_calls() -> None:
    found = stream(
        [
            chunk("Checking."),
            chunk(calls=[ToolCallDelta(index=0, id="call_a", name="get_weather", arguments="")]),
            chunk(calls=[ToolCallDelta(index=0, arguments='{"city":')]),
            chunk(calls=[ToolCallDelta(index=0, arguments='"Oslo"}')]),
            chunk(calls=[ToolCallDelta(index=1, id="call_b", name="get_time", arguments="{}")]),
            chunk(finish="tool_calls"),
            chunk(usage=USAGE),
        ]
    )
    assert [(e["type"], e.get("output_index")) for e in found] == [
        ("response.created", None),
        ("response.in_progress", None),
        ("response.output_item.added", 0),
        ("response.content_part.added", 0),
        ("response.output_text.delta", 0),
        ("response.output_text.done", 0),
        ("response.content_part.done", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.function_call_arguments.delta", 1),
        ("response.function_call_arguments.delta", 1),
        ("response.function_call_arguments.done", 1),
        ("response.output_item.done", 1),
        ("response.output_item.added", 2),
        ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.done", 2),
        ("response.output_item.done", 2),
        ("response.completed", None),
    ]
    assert found[8]["item"] == {
        "id": "fc_1",
        "type": "function_call",
        "status": "in_progress",
        "arguments": "",
        "call_id": "call_a",
        "name": "get_weather",
    }
    assert found[9] == {
        "type": "response.function_call_arguments.delta",
        "item_id": "fc_1",
        "output_index": 1,
        "delta": '{"city":',
    }
    assert found[11] == {
        "type": "response.function_call_arguments.done",
        "item_id": "fc_1",
        "output_index": 1,
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert found[12]["item"] == {**found[8]["item"], "status": "completed", "arguments": '{"city":"Oslo"}'}
    assert [i["type"] for i in found[-1]["response"]["output"]] == ["message", "function_call", "function_call"]


def test_a_stream_cut_at_max_tokens_ends_with_response_incomplete() -> None:
    found = stream([chunk("Once"), chunk(finish="length"), chunk(usage=USAGE)])
    assert found[-1]["type"] == "response.incomplete"
    assert found[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert found[-2]["item"]["status"] == "incomplete"


def test_a_failure_mid_stream_is_an_error_event_then_response_failed() -> None:
    encoder = wire.StreamEncoder(wire.ResponseShell(decode(), "public"))
    data = encoder.start() + encoder.encode(chunk("Half"))
    data += encoder.fail(StreamInterrupted("upstream failed mid-stream: reset"))
    found = normalized([e for _, e in events(data)])
    assert [e["type"] for e in found][-2:] == ["error", "response.failed"]
    assert found[-2] == {
        "type": "error",
        "sequence_number": 5,
        "code": "server_error",
        "message": "upstream failed mid-stream: reset",
        "param": None,
    }
    failed = found[-1]["response"]
    assert (failed["status"], failed["error"]) == (
        "failed",
        {"code": "server_error", "message": "upstream failed mid-stream: reset"},
    )
    assert failed["output"][0]["status"] == "incomplete" and failed["output"][0]["content"][0]["text"] == "Half"
    assert wire.error_out(UpstreamRateLimited("slow down"))["code"] == "rate_limit_exceeded"


def test_the_streamed_output_replays_as_one_assistant_message() -> None:
    encoder = wire.StreamEncoder(wire.ResponseShell(decode(), "public"))
    encoder.encode(chunk("Let me see."))
    encoder.encode(chunk(calls=[ToolCallDelta(index=0, id="call_a", name="f", arguments="{}")]))
    assert encoder.message() == Message(
        role="assistant", content="Let me see.", tool_calls=[ToolCall("call_a", "f", "{}")]
    )


# -- reasoning, namespaces, custom tools --


def test_reasoning_from_a_chat_backend_is_a_reasoning_item_before_the_text() -> None:
    message = Message(role="assistant", content="42.", reasoning="6 times 7.")
    body, _, _ = wire.encode_response(wire.ResponseShell(decode(), "m"), reply(message))
    assert normalized(body["output"])[0] == {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "6 times 7."}],
    }
    assert body["output"][1]["type"] == "message"


def test_streamed_reasoning_opens_a_reasoning_item_with_its_own_events() -> None:
    think = ChatChunk(id="c1", model="up", created=1, choices=[ChunkChoice(delta=Delta(reasoning="hmm"))])
    found = stream([think, chunk("Hi"), chunk(finish="stop"), chunk(usage=USAGE)])
    kinds = [e["type"] for e in found]
    assert kinds[2:6] == [
        "response.output_item.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.output_item.done",
    ]
    assert found[3] == {
        "type": "response.reasoning_text.delta",
        "item_id": "rs_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "hmm",
    }
    assert found[5]["item"]["content"] == [{"type": "reasoning_text", "text": "hmm"}]
    assert found[-1]["response"]["output"][1]["content"][0]["text"] == "Hi"


NAMESPACED: list[Any] = [
    {
        "type": "namespace",
        "name": "crm",
        "description": "CRM.",
        "tools": [WEATHER, {"type": "custom", "name": "patch"}],
    },
    {"type": "web_search"},
    {"type": "local_shell"},
]


def test_namespaces_flatten_and_hosted_tools_are_named() -> None:
    request = decode(tools=NAMESPACED, tool_choice={"type": "function", "name": "get_weather", "namespace": "crm"})
    assert [t.name for t in request.chat.tools or ()] == ["crm__get_weather", "crm__patch"]
    assert request.chat.hosted_tools == ["web_search", "local_shell"]
    assert request.chat.tool_choice == {"type": "function", "function": {"name": "crm__get_weather"}}
    assert request.echo["tools"] == NAMESPACED


def test_a_long_namespaced_name_is_cut_to_64_characters_uniquely() -> None:
    tool = {
        "type": "namespace",
        "name": "n" * 40,
        "tools": [{**WEATHER, "name": "f" * 40}, {**WEATHER, "name": "f" * 41}],
    }
    names = [t.name for t in decode(tools=[tool]).chat.tools or ()]
    assert all(len(n) == 64 for n in names) and len(set(names)) == 2


def test_calls_to_flattened_tools_get_their_namespace_and_type_back() -> None:
    request = decode(tools=NAMESPACED)
    calls = [ToolCall("call_a", "crm__get_weather", "{}"), ToolCall("call_b", "crm__patch", '{"input": "*** Begin"}')]
    body, _, _ = wire.encode_response(
        wire.ResponseShell(request, "m"), reply(Message(role="assistant", tool_calls=calls))
    )
    first, second = normalized(body["output"])
    assert (first["type"], first["name"], first["namespace"]) == ("function_call", "get_weather", "crm")
    assert second == {
        "id": "fc_2",
        "type": "custom_tool_call",
        "status": "completed",
        "input": "*** Begin",
        "call_id": "call_b",
        "name": "patch",
        "namespace": "crm",
    }


def test_a_streamed_custom_call_sends_its_input_whole_when_done() -> None:
    request = decode(tools=NAMESPACED)
    calls = [ToolCallDelta(index=0, id="call_b", name="crm__patch", arguments='{"input": "a')]
    more = [ToolCallDelta(index=0, arguments='b"}')]
    found = stream([chunk(calls=calls), chunk(calls=more), chunk(finish="tool_calls"), chunk(usage=USAGE)], request)
    kinds = [e["type"] for e in found]
    assert "response.function_call_arguments.delta" not in kinds
    delta = next(e for e in found if e["type"] == "response.custom_tool_call_input.delta")
    done = next(e for e in found if e["type"] == "response.custom_tool_call_input.done")
    assert (delta["delta"], done["input"]) == ("ab", "ab")
    assert found[-1]["response"]["output"][0]["type"] == "custom_tool_call"
