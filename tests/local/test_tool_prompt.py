"""The built-in tool template: what reaches the engine, and how calls come out of its text.

The engine here is a scripted stand-in that records the body it got and replies with fixed
text, so the parsing of `<tool_call>` blocks (split across stream chunks, malformed, naming
a tool nobody offered) is exact; the real engines run it in `test_local_tool_prompt.py`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmmux.local.bridge import Emit
from llmmux.local.engines.tool_prompt import ToolPromptModel, render_messages

WEATHER: Any = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}
ASK: Any = [{"role": "user", "content": "weather in Oslo?"}]
CALL_TEXT = 'Let me look.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'


class ScriptedModel:
    """Replies with `text` (split into `pieces` stream chunks), or first with `errors`."""

    parallel = 1
    tools: bool | None = False
    schema_output = True

    def __init__(self, text: str, pieces: list[str] | None = None, errors: list[bytes] | None = None) -> None:
        self.text = text
        self.pieces = pieces or [text]
        self.errors = errors or []
        self.bodies: list[dict[str, Any]] = []

    def chat(self, body: bytes, emit: Emit) -> None:
        request = json.loads(body)
        self.bodies.append(request)
        if self.errors:
            emit(self.errors.pop(0))
            return
        if not request.get("stream"):
            message = {"role": "assistant", "content": self.text}
            emit(
                json.dumps(
                    {"id": "chatcmpl-1", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
                ).encode()
            )
            return
        chunks = [{"role": "assistant", "content": None}, *({"content": piece} for piece in self.pieces)]
        for delta in chunks:
            if emit(
                json.dumps(
                    {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                ).encode()
            ):
                return
        emit(json.dumps({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode())
        emit(json.dumps({"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3}}).encode())

    def embed(self, body: bytes, emit: Emit) -> None:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


def run(model: ScriptedModel, constrain: bool = True, **body: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    ToolPromptModel(model, constrain=constrain).chat(
        json.dumps({"messages": ASK, **body}).encode(), lambda p: out.append(json.loads(p)) is None and False
    )
    return out


def test_the_tools_go_into_the_system_prompt_and_not_to_the_engine() -> None:
    model = ScriptedModel("hello")
    run(model, tools=[WEATHER], tool_choice="auto", parallel_tool_calls=True)
    body = model.bodies[0]
    assert "tools" not in body and "tool_choice" not in body and "parallel_tool_calls" not in body
    system = body["messages"][0]
    assert system["role"] == "system" and "<tools>\n" + json.dumps(WEATHER, separators=(",", ":")) in system["content"]
    assert "<tool_call>" in system["content"] and body["messages"][1:] == ASK
    assert "response_format" not in body  # nothing is forced when the model may answer in text


def test_a_call_in_the_text_becomes_tool_calls() -> None:
    [reply] = run(ScriptedModel(CALL_TEXT), tools=[WEATHER])
    choice = reply["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    [call] = choice["message"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city":"Oslo"}'} and call["id"].startswith(
        "call_"
    )


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Os',  # cut off
        '<tool_call>{"name": "delete_everything", "arguments": {}}</tool_call>',  # not offered
    ],
)
def test_a_block_that_is_not_a_call_stays_text(text: str) -> None:
    [reply] = run(ScriptedModel(text), tools=[WEATHER])
    assert reply["choices"][0]["message"] == {"role": "assistant", "content": text}
    streamed = run(ScriptedModel(text, pieces=[text[:5], text[5:17], text[17:]]), tools=[WEATHER], stream=True)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed if c["choices"]) == text
    assert streamed[-2]["choices"][0]["finish_reason"] == "stop"


def test_a_streamed_call_split_anywhere_is_held_back_and_sent_whole() -> None:
    pieces = [
        "Let me",
        " look.<tool",
        '_call>\n{"name": "get_',
        'weather", "arguments": {"city": "Oslo"}}\n</tool_call>',
    ]
    chunks = run(ScriptedModel(CALL_TEXT, pieces=pieces), tools=[WEATHER], stream=True)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Let me look."
    deltas = [d for c in chunks if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [(d["index"], d["function"]["name"], d["function"]["arguments"]) for d in deltas] == [
        (0, "get_weather", '{"city":"Oslo"}')
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1] == {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 3}}


def test_a_required_call_is_constrained_to_the_tools_schemas() -> None:
    bare = '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    model = ScriptedModel(bare)
    [reply] = run(model, tools=[WEATHER], tool_choice="required")
    schema = model.bodies[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"] == {"name": {"const": "get_weather"}, "arguments": WEATHER["function"]["parameters"]}
    assert "You must call one of these functions" in model.bodies[0]["messages"][0]["content"]
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_constraint_the_engine_refuses_is_dropped_and_the_request_runs_again() -> None:
    refusal = b'{"error": {"code": 400, "message": "Failed to initialize samplers", "type": "invalid_request_error"}}'
    model = ScriptedModel(CALL_TEXT, errors=[refusal])
    [reply] = run(model, tools=[WEATHER], tool_choice="required")
    assert "response_format" in model.bodies[0] and "response_format" not in model.bodies[1]
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    # An engine that cannot constrain (MLX) is asked once, with the prompt alone.
    plain = ScriptedModel(CALL_TEXT)
    run(plain, constrain=False, tools=[WEATHER], tool_choice="required")
    assert len(plain.bodies) == 1 and "response_format" not in plain.bodies[0]


def test_none_sends_no_tools_and_history_is_written_out() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    history: Any = [
        {"role": "system", "content": "Be brief."},
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "warm"}]},
    ]
    assert render_messages(history) == [
        {"role": "system", "content": "Be brief."},
        *ASK,
        {
            "role": "assistant",
            "content": '<tool_call>\n{"name":"get_weather","arguments":{"city":"Oslo"}}\n</tool_call>',
        },
        {
            "role": "user",
            "content": "<tool_response>\nsunny\n</tool_response>\n<tool_response>\nwarm\n</tool_response>",
        },
    ]
    model = ScriptedModel("ok")
    out: list[bytes] = []
    ToolPromptModel(model, constrain=True).chat(
        json.dumps({"messages": history, "tools": [WEATHER], "tool_choice": "none"}).encode(),
        lambda p: out.append(p) is None and False,
    )
    assert model.bodies[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "tools" not in model.bodies[0] and json.loads(out[0])["choices"][0]["message"]["content"] == "ok"


def test_a_prompt_too_long_for_the_context_runs_again_with_the_tools_in_brief() -> None:
    long_tool: Any = {
        "type": "function",
        "function": {
            "name": "create_issue",
            "description": "Create an issue. " + "It explains at length how to write one. " * 50,
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "title": {"type": "string", "description": "the issue's title " * 20},
                    "description": {"type": "string", "title": "Body", "examples": ["a bug"]},
                },
                "required": ["title"],
            },
        },
    }
    refusal = b'{"error": {"code": 400, "message": "request (9000 tokens) exceeds the available context size", "type": "exceed_context_size_error"}}'
    model = ScriptedModel(
        '<tool_call>{"name": "create_issue", "arguments": {"title": "t"}}</tool_call>', errors=[refusal]
    )
    [reply] = run(model, tools=[long_tool])
    full, brief = (body["messages"][0]["content"] for body in model.bodies)
    assert len(brief) < len(full) / 4
    offered = json.loads(brief.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0])["function"]
    assert offered["description"] == "Create an issue"
    assert offered["parameters"] == {
        "type": "object",
        "properties": {"title": {"type": "string"}, "description": {"type": "string"}},  # named by the tool: kept
        "required": ["title"],
    }
    assert reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "create_issue"
    # Still too long: the client gets the engine's own refusal.
    too_long = ScriptedModel("unused", errors=[refusal, refusal])
    assert run(too_long, tools=[long_tool]) == [json.loads(refusal)] and len(too_long.bodies) == 2


def test_calls_without_an_end_tag_or_followed_by_words_still_parse() -> None:
    text = (
        '<tool_call>\n[{"name": "get_weather", "arguments": {"city": "Oslo"}}]\n</tool_call>\n'
        '<tool_call>{"name": "get_weather", "parameters": {"city": "Rome"}}\nThen I will compare them.'
    )
    [reply] = run(ScriptedModel(text), tools=[WEATHER])
    message = reply["choices"][0]["message"]
    assert [json.loads(c["function"]["arguments"])["city"] for c in message["tool_calls"]] == ["Oslo", "Rome"]
    assert len({c["id"] for c in message["tool_calls"]}) == 2
    assert message["content"] == "Then I will compare them."
    streamed = run(ScriptedModel(text, pieces=[text[:30], text[30:90], text[90:]]), tools=[WEATHER], stream=True)
    deltas = [d for c in streamed if c["choices"] for d in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [d["index"] for d in deltas] == [0, 1]
    words = "".join(c["choices"][0]["delta"].get("content") or "" for c in streamed if c["choices"])
    assert words.strip() == "Then I will compare them."
