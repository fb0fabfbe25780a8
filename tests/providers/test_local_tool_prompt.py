"""Tools on a model whose chat template has none: the embedded SmolLM2 through the official
SDKs, with llmmux's built-in tool template (`local/engines/tool_prompt.py`).

A required or named call is constrained by a JSON-schema grammar, so even a 135M model
gives a well-formed call of an offered tool; left to choose, it answers in text or calls a
tool, and either is a valid reply (what it says is the model's business).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from llmmux.router import Router
from llmmux.server.app import App
from local.fixtures import smollm2_path  # noqa: F401  (fixture)
from local.serving import serving

ASK: Any = [{"role": "user", "content": "What is the weather in Paris? Use a tool."}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"utc": {"type": "boolean"}}, "required": ["utc"]},
    },
}
ROOM: Any = {"max_tokens": 60, "temperature": 0}


def agent_tools(count: int) -> list[Any]:
    """A coding agent's kind of tool list: many tools, long descriptions, nested schemas."""
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": f"Tool number {i}. " + "Use it carefully; it reads and edits files. " * 2,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "an absolute path"},
                        "options": {"type": "object", "properties": {"recursive": {"type": "boolean"}}},
                        "lines": {"type": "array", "items": {"type": "integer"}},
                    },
                    "required": ["path"],
                    "additionalProperties": False,
                },
            },
        }
        for i in range(count)
    ]


@pytest.fixture(scope="module")
def base(smollm2_path: Path) -> Iterator[str]:  # noqa: F811
    config = {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "engine": "xllamacpp",
                "n_threads": 1,
                "models": [{"name": "smol", "path": str(smollm2_path), "n_ctx": 8192}],
            }
        }
    }
    with serving(App(Router.from_config(config))) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def only_call(reply: Any) -> Any:
    calls = reply.choices[0].message.tool_calls
    assert calls and len(calls) == 1, reply
    return calls[0]


def test_a_required_call_is_a_well_formed_call_of_an_offered_tool(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="smol", messages=ASK, tools=[WEATHER, TIME], tool_choice="required", **ROOM
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    call = only_call(reply)
    assert call.id.startswith("call_") and call.type == "function"
    arguments = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert isinstance(arguments["city"], str) and arguments["days"] >= 1
    else:
        assert call.function.name == "get_time" and isinstance(arguments["utc"], bool)


def test_a_named_function_is_the_one_called_streamed_or_not(client: openai.OpenAI) -> None:
    named: Any = {"type": "function", "function": {"name": "get_time"}}
    whole = client.chat.completions.create(model="smol", messages=ASK, tools=[WEATHER, TIME], tool_choice=named, **ROOM)
    assert only_call(whole).function.name == "get_time"
    chunks = list(
        client.chat.completions.create(
            model="smol", messages=ASK, tools=[WEATHER, TIME], tool_choice=named, stream=True, **ROOM
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas and deltas[0].function and deltas[0].function.name == "get_time" and deltas[0].id
    assert "".join(d.function.arguments or "" for d in deltas if d.function) == only_call(whole).function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


def test_none_leaves_the_tools_out_of_the_prompt(client: openai.OpenAI) -> None:
    offered = client.chat.completions.create(model="smol", messages=ASK, tools=[WEATHER], max_tokens=1)
    declined = client.chat.completions.create(
        model="smol", messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=1
    )
    plain = client.chat.completions.create(model="smol", messages=ASK, max_tokens=1)
    assert offered.usage and declined.usage and plain.usage
    assert offered.usage.prompt_tokens > plain.usage.prompt_tokens + 50  # the tools block is in the prompt
    # With the tools declined, the model's own template renders the conversation as before.
    assert declined.usage.prompt_tokens == plain.usage.prompt_tokens
    assert declined.choices[0].message.tool_calls is None


def test_a_tool_result_goes_back_to_the_model_and_it_answers(client: openai.OpenAI) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    turn: Any = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24 degrees " * 10},
    ]
    before = client.chat.completions.create(model="smol", messages=ASK, tools=[WEATHER], max_tokens=1)
    after = client.chat.completions.create(model="smol", messages=turn, tools=[WEATHER], **ROOM)
    assert before.usage and after.usage
    # The call and the ten-fold result are in the prompt (the template alone would drop the call).
    assert after.usage.prompt_tokens > before.usage.prompt_tokens + 60
    message = after.choices[0].message
    assert message.content or message.tool_calls


@pytest.mark.parametrize("stream", [False, True])
def test_an_agents_request_gets_a_valid_reply(client: openai.OpenAI, stream: bool) -> None:
    system = "You are a coding agent working in a repository. " + "Follow the user's instructions exactly. " * 8
    messages: Any = [{"role": "system", "content": system}, {"role": "user", "content": "List the files in /tmp."}]
    tools = [*agent_tools(5), WEATHER]
    if not stream:
        reply = client.chat.completions.create(model="smol", messages=messages, tools=tools, **ROOM)
        message = reply.choices[0].message
        assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
        for call in message.tool_calls or []:
            assert call.function.name in {t["function"]["name"] for t in tools}
            assert isinstance(json.loads(call.function.arguments), dict)
        assert message.content or message.tool_calls
        return
    chunks = list(client.chat.completions.create(model="smol", messages=messages, tools=tools, stream=True, **ROOM))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert text or deltas
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length", "tool_calls")


def test_the_anthropic_door_gets_a_tool_use_block(base: str) -> None:
    with anthropic.Anthropic(base_url=base, api_key="x", max_retries=0) as sdk:
        message = sdk.messages.create(
            model="smol",
            max_tokens=60,
            system="You are a helpful agent. " * 10,
            messages=[{"role": "user", "content": "Read the file notes.txt"}],
            tools=[
                {
                    "name": "read_file",
                    "description": "Read a file",
                    "input_schema": {
                        "type": "object",
                        "properties": {"path": {"type": "string"}},
                        "required": ["path"],
                    },
                },
                {"name": "list_dir", "input_schema": {"type": "object", "properties": {}}},
            ],
            tool_choice={"type": "any"},
        )
    assert message.stop_reason == "tool_use"
    blocks = [b for b in message.content if b.type == "tool_use"]
    assert blocks and blocks[0].name in ("read_file", "list_dir") and isinstance(blocks[0].input, dict)


READ_FILE: Any = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}


def test_streamed_calls_reach_claude_code_and_codex_shaped_clients(base: str) -> None:
    # Claude Code streams /v1/messages; Codex streams /v1/responses.
    with anthropic.Anthropic(base_url=base, api_key="x", max_retries=0) as sdk:
        with sdk.messages.stream(
            model="smol",
            max_tokens=60,
            messages=[{"role": "user", "content": "Read notes.txt"}],
            tools=[READ_FILE],
            tool_choice={"type": "any"},
        ) as stream:
            message = stream.get_final_message()
    [block] = [b for b in message.content if b.type == "tool_use"]
    assert message.stop_reason == "tool_use" and block.name == "read_file" and isinstance(block.input["path"], str)
    function: Any = {"type": "function", "name": "read_file", "parameters": READ_FILE["input_schema"]}
    with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as client:
        events = list(
            client.responses.create(
                model="smol",
                input="Read notes.txt",
                tools=[function],
                tool_choice="required",
                max_output_tokens=60,
                stream=True,
            )
        )
    [done] = [e for e in events if e.type == "response.completed"]
    calls = [item for item in done.response.output if item.type == "function_call"]
    assert calls and calls[0].name == "read_file" and isinstance(json.loads(calls[0].arguments)["path"], str)
