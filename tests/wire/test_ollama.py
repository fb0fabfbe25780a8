"""Canonical requests to Ollama's /api/chat and Ollama's replies back, against the shapes in Ollama's docs/api.md."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmmux.errors import InvalidRequest
from llmmux.types import ChatRequest, ImagePart, Message, OtherPart, Part, TextPart, Tool, ToolCall
from llmmux.wire import ollama as wire
from llmmux.wire import openai as openai_wire
from llmmux.wire.ndjson import LineTooLong, NDJSONSplitter

PNG = "iVBORw0KGgoAAAANSUhEUgAAAG0AAABmCAYAAADBPx+VAAAACXBIWXMAAAsTAAALEwEAmpwYAAAAAXNSR0IArs4c6QAAAARnQU1BAACxjwv8YQUA"
WEATHER = Tool(
    name="get_current_weather",
    description="Get the current weather for a location",
    parameters={"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
)


def body_for(request: ChatRequest, *, stream: bool = False, model: str = "llama3.2") -> dict[str, Any]:
    result: dict[str, Any] = json.loads(wire.encode_chat_request(request, model, stream=stream))
    return result


def chat(**fields: Any) -> ChatRequest:
    fields.setdefault("messages", [Message(role="user", content="why is the sky blue?")])
    return ChatRequest(model="public-name", **fields)


# -- requests --


def test_a_plain_request_names_the_model_and_always_says_whether_to_stream() -> None:
    assert body_for(chat()) == {
        "model": "llama3.2",
        "stream": False,
        "messages": [{"role": "user", "content": "why is the sky blue?"}],
    }
    assert body_for(chat(), stream=True)["stream"] is True  # Ollama would stream if told nothing


def test_sampling_settings_go_under_options_with_ollamas_names() -> None:
    request = chat(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        seed=101,
        stop=["\n", "user:"],
        max_tokens=128,
        presence_penalty=1.5,
        frequency_penalty=1.0,
        extra={"num_ctx": 8192},
    )
    assert body_for(request)["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "seed": 101,
        "stop": ["\n", "user:"],
        "num_predict": 128,
        "presence_penalty": 1.5,
        "frequency_penalty": 1.0,
        "num_ctx": 8192,
    }


@pytest.mark.parametrize("key", wire.CONTEXT_KEYS)
def test_the_context_window_comes_from_any_of_its_usual_names(key: str) -> None:
    assert body_for(chat(extra={key: 32768}))["options"] == {"num_ctx": 32768}


@pytest.mark.parametrize("value", ["8k", 0, -1, True, 2.5])
def test_a_context_window_that_is_not_a_positive_integer_is_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest, match="context window") as error:
        body_for(chat(extra={"num_ctx": value}))
    assert error.value.param == "num_ctx"


def test_ollama_only_fields_pass_through_from_extra_and_options_merge_under_the_canonical_ones() -> None:
    request = chat(
        temperature=0.5,
        extra={
            "keep_alive": "10m",
            "think": "high",
            "logprobs": True,
            "top_logprobs": 2,
            "options": {"temperature": 0.9, "mirostat": 1},
        },
    )
    body = body_for(request)
    assert (body["keep_alive"], body["think"], body["logprobs"], body["top_logprobs"]) == ("10m", "high", True, 2)
    assert body["options"] == {"temperature": 0.5, "mirostat": 1}
    assert body_for(chat(extra={"keep_alive": 0}))["keep_alive"] == 0  # 0 unloads: a value, not "unset"


def test_response_formats_become_ollamas_format() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}
    assert body_for(chat(response_format={"type": "json_object"}))["format"] == "json"
    json_schema = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    assert body_for(chat(response_format=json_schema))["format"] == schema
    assert "format" not in body_for(chat(response_format={"type": "text"}))
    with pytest.raises(InvalidRequest, match="json_schema.schema"):
        body_for(chat(response_format={"type": "json_schema", "json_schema": {"name": "x"}}))


def test_images_become_bare_base64_and_links_are_refused() -> None:
    parts: list[Part] = [
        TextPart("what is in this image?"),
        ImagePart(url=f"data:image/png;base64,{PNG}"),
        ImagePart(url=PNG),
    ]
    message = body_for(chat(messages=[Message(role="user", content=parts)]))["messages"][0]
    assert message == {"role": "user", "content": "what is in this image?", "images": [PNG, PNG]}
    with pytest.raises(InvalidRequest, match="not links") as error:
        body_for(chat(messages=[Message(role="user", content=[ImagePart(url="https://example.com/cat.png")])]))
    assert error.value.param == "messages[0].content[0]"
    with pytest.raises(InvalidRequest, match="'input_audio'"):
        body_for(chat(messages=[Message(role="user", content=[OtherPart({"type": "input_audio"})])]))


def test_tools_tool_calls_and_tool_results_take_ollamas_shapes() -> None:
    messages = [
        Message(role="developer", content="be brief"),
        Message(role="user", content="weather in Paris and Rome?"),
        Message(
            role="assistant",
            content=None,
            reasoning="two cities",
            tool_calls=[
                ToolCall(id="call_a", name="get_current_weather", arguments='{"location": "Paris"}'),
                ToolCall(id="call_b", name="get_time", arguments=""),
            ],
        ),
        Message(role="tool", tool_call_id="call_b", content="noon"),
        Message(role="tool", tool_call_id="call_a", content="22C"),
    ]
    body = body_for(chat(messages=messages, tools=[WEATHER]))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_current_weather",
                "description": "Get the current weather for a location",
                "parameters": WEATHER.parameters,
            },
        }
    ]
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "",
            "thinking": "two cities",
            "tool_calls": [
                {"function": {"name": "get_current_weather", "arguments": {"location": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "noon", "tool_name": "get_time"},
        {"role": "tool", "content": "22C", "tool_name": "get_current_weather"},
    ]


def test_tool_choice_none_withholds_the_tools_and_bad_arguments_are_refused() -> None:
    assert "tools" not in body_for(chat(tools=[WEATHER], tool_choice="none"))
    call = ToolCall(id="call_1", name="f", arguments="[1, 2]")
    with pytest.raises(InvalidRequest, match="not a JSON object"):
        body_for(chat(messages=[Message(role="assistant", tool_calls=[call])]))
    with pytest.raises(InvalidRequest, match="one choice") as error:
        body_for(chat(n=2))
    assert error.value.param == "n"


def test_an_ollama_clients_body_passes_through_with_only_the_model_and_stream_rewritten() -> None:
    raw = {
        "model": "public-name",
        "messages": [{"role": "user", "content": "hi", "images": [PNG]}],
        "options": {"mirostat": 2},
        "keep_alive": "1h",
        "provider": "local",
    }
    messages = [Message(role="user", content="hi")]
    request = ChatRequest(model="public-name", messages=messages, client_wire="ollama").passing_through(raw)
    body = body_for(request, stream=True)
    assert body == {
        "model": "llama3.2",
        "messages": raw["messages"],
        "options": {"mirostat": 2},
        "keep_alive": "1h",
        "stream": True,
    }
    openai_body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 5}
    openai_request = openai_wire.decode_chat_request(openai_body)
    # Another wire's body is never sent to Ollama as it came: it is translated.
    assert body_for(openai_request) == {
        "model": "llama3.2",
        "stream": False,
        "options": {"num_predict": 5},
        "messages": [{"role": "user", "content": "hi"}],
    }


# -- replies --

TOOL_REPLY = {
    "model": "llama3.2",
    "created_at": "2024-07-22T20:33:28.123648Z",
    "message": {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"function": {"name": "get_current_weather", "arguments": {"format": "celsius", "location": "Paris, FR"}}}
        ],
    },
    "done_reason": "stop",
    "done": True,
    "total_duration": 885095291,
    "load_duration": 3753500,
    "prompt_eval_count": 122,
    "prompt_eval_duration": 328493000,
    "eval_count": 33,
    "eval_duration": 552222000,
}


def test_a_reply_becomes_a_canonical_response_with_usage() -> None:
    data = json.dumps(
        {
            "model": "llama3.2",
            "created_at": "2023-12-12T14:13:43.416799Z",
            "message": {"role": "assistant", "content": "Hello! How are you today?", "thinking": "hmm"},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 26,
            "eval_count": 298,
        }
    ).encode()
    response = wire.decode_chat_response(data)
    choice = response.choices[0]
    assert (choice.message.content, choice.message.reasoning, choice.finish_reason) == (
        "Hello! How are you today?",
        "hmm",
        "stop",
    )
    usage = response.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (26, 298, 324)
    assert (response.model, response.created, response.raw, response.raw_wire) == (
        "llama3.2",
        1702390423,
        data,
        "ollama",
    )
    assert response.id.startswith("chatcmpl-")


def test_tool_calls_get_ids_and_json_text_arguments_and_finish_as_tool_calls() -> None:
    response = wire.decode_chat_response(json.dumps(TOOL_REPLY).encode())
    choice = response.choices[0]
    (call,) = choice.message.tool_calls or []
    assert call.name == "get_current_weather" and call.id.startswith("call_")
    assert json.loads(call.arguments) == {"format": "celsius", "location": "Paris, FR"}
    assert (choice.finish_reason, choice.message.content) == ("tool_calls", None)


@pytest.mark.parametrize(
    ("done_reason", "finish"), [("stop", "stop"), ("length", "length"), (None, "stop"), ("load", "stop")]
)
def test_done_reasons_map_to_finish_reasons(done_reason: str | None, finish: str) -> None:
    reply = {"model": "m", "message": {"role": "assistant", "content": "x"}, "done": True, "done_reason": done_reason}
    assert wire.decode_chat_response(json.dumps(reply).encode()).choices[0].finish_reason == finish


def test_an_error_body_or_garbage_is_reported_not_decoded() -> None:
    with pytest.raises(wire.ErrorReply, match="model requires more system memory"):
        wire.decode_chat_response(b'{"error":"model requires more system memory (5.5 GiB) than is available"}')
    for bad in (b'{"model": "m"', b"[]", b'{"model": "m", "done": true}'):
        with pytest.raises(wire.MalformedReply):
            wire.decode_chat_response(bad)


def test_error_messages_come_out_of_every_shape_ollama_and_proxies_send() -> None:
    assert wire.error_message(b'{"error":"model \'x\' not found, try pulling it first"}') == (
        "model 'x' not found, try pulling it first"
    )
    assert wire.error_message(b'{"error": {"message": "rate limited"}}') == "rate limited"
    assert wire.error_message(b"404 page not found") == "404 page not found"


# -- streams --

STREAM = [
    {
        "model": "llama3.2",
        "created_at": "2023-08-04T08:52:19.385406455-07:00",
        "message": {"role": "assistant", "content": "", "thinking": "Rayleigh"},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2023-08-04T08:52:19.385406455-07:00",
        "message": {"role": "assistant", "content": "The"},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2023-08-04T08:52:19.5Z",
        "message": {"role": "assistant", "content": " sky"},
        "done": False,
    },
    {
        "model": "llama3.2",
        "created_at": "2023-08-04T19:22:45.499127Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": "stop",
        "total_duration": 4883583458,
        "prompt_eval_count": 26,
        "eval_count": 282,
    },
]


def feed_all(lines: list[dict[str, Any]]) -> tuple[wire.StreamDecoder, list[Any]]:
    decoder = wire.StreamDecoder(id="chatcmpl-fixed")
    return decoder, [c for line in lines for c in decoder.feed(json.dumps(line).encode())]


def test_stream_lines_become_deltas_then_a_finish_chunk_and_a_usage_chunk() -> None:
    decoder, chunks = feed_all(STREAM)
    deltas = [c.choices[0].delta for c in chunks[:3]]
    assert [(d.role, d.reasoning, d.content) for d in deltas] == [
        ("assistant", "Rayleigh", None),
        (None, None, "The"),
        (None, None, " sky"),
    ]
    finish, usage = chunks[3:]
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.role is None
    assert usage.choices == [] and (usage.usage.prompt_tokens, usage.usage.completion_tokens) == (26, 282)
    assert decoder.done and {c.id for c in chunks} == {"chatcmpl-fixed"} and {c.model for c in chunks} == {"llama3.2"}
    assert len({c.created for c in chunks}) == 1


def test_streamed_tool_calls_get_consecutive_indexes_and_finish_as_tool_calls() -> None:
    call = {"function": {"name": "f", "arguments": {"x": 1}}}
    lines = [
        {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": False},
        {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [call, call]}, "done": False},
        {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"},
    ]
    _, chunks = feed_all(lines)
    calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert [t.index for t in calls] == [0, 1, 2] and {t.arguments for t in calls} == {'{"x":1}'}
    assert len({t.id for t in calls}) == 3
    assert chunks[-2].choices[0].finish_reason == "tool_calls"


def test_empty_lines_after_the_first_produce_no_chunks_and_a_lone_done_line_still_names_the_role() -> None:
    empty = {"model": "m", "message": {"role": "assistant", "content": ""}, "done": False}
    _, chunks = feed_all([empty, empty])
    assert len(chunks) == 1 and chunks[0].choices[0].delta.role == "assistant"
    _, only_done = feed_all([STREAM[-1]])
    assert [c.choices[0].delta.role for c in only_done if c.choices] == ["assistant"]


def test_an_error_line_mid_stream_is_an_error_reply() -> None:
    decoder = wire.StreamDecoder()
    decoder.feed(json.dumps(STREAM[1]).encode())
    with pytest.raises(wire.ErrorReply, match="unexpected EOF"):
        decoder.feed(b'{"error":"an error was encountered while running the model: unexpected EOF"}')


# -- model management --


def test_the_model_list_keeps_sizes_families_and_quantization() -> None:
    data = json.dumps(
        {
            "models": [
                {
                    "name": "codellama:13b",
                    "model": "codellama:13b",
                    "modified_at": "2023-11-04T14:56:49.277302595-07:00",
                    "size": 7365960935,
                    "digest": "9f438cb9",
                    "details": {
                        "format": "gguf",
                        "family": "llama",
                        "families": None,
                        "parameter_size": "13B",
                        "quantization_level": "Q4_0",
                    },
                },
                {"name": "bare:latest"},
            ]
        }
    ).encode()
    first, bare = wire.decode_model_list(data, "local")
    assert (first.id, first.size, first.family, first.quantization, first.size_bytes, first.provider) == (
        "codellama:13b",
        "13B",
        "llama",
        "Q4_0",
        7365960935,
        "local",
    )
    assert (bare.id, bare.size, bare.family) == ("bare:latest", None, None)


def test_context_length_is_read_from_show_model_info() -> None:
    show = {
        "details": {"family": "llama"},
        "model_info": {"general.architecture": "llama", "llama.context_length": 8192},
    }
    assert wire.context_length(json.dumps(show).encode()) == 8192
    other = {"model_info": {"general.architecture": "x", "qwen2.context_length": 32768}}
    assert wire.context_length(json.dumps(other).encode()) == 32768
    assert wire.context_length(b'{"details": {}}') is None and wire.context_length(b"garbage") is None


def test_pull_progress_lines_decode_and_an_error_line_raises() -> None:
    line = b'{"status":"pulling 6a0746a1ec1a","digest":"sha256:6a07","total":2142590208,"completed":241970}'
    assert wire.decode_progress(line) == wire.Progress(
        status="pulling 6a0746a1ec1a", digest="sha256:6a07", total=2142590208, completed=241970
    )
    with pytest.raises(wire.ErrorReply, match="file does not exist"):
        wire.decode_progress(b'{"error":"pull model manifest: file does not exist"}')


# -- NDJSON --


def test_the_splitter_reassembles_lines_across_any_chunking() -> None:
    payload = b'{"a": 1}\r\n\n{"b": 2}\n{"c": 3}\n'
    for size in (1, 3, 7, len(payload)):
        splitter = NDJSONSplitter()
        lines = [line for i in range(0, len(payload), size) for line in splitter.feed(payload[i : i + size])]
        assert lines == [b'{"a": 1}', b'{"b": 2}', b'{"c": 3}'] and splitter.pending == b""


def test_the_splitter_reports_a_cut_line_and_bounds_its_buffer() -> None:
    splitter = NDJSONSplitter(max_line=10)
    assert splitter.feed(b'{"a": 1}\n{"b"') == [b'{"a": 1}'] and splitter.pending == b'{"b"'
    with pytest.raises(LineTooLong):
        splitter.feed(b"x" * 8)
