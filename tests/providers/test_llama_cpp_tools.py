"""Tool calls from in-process GGUF models whose chat template renders tools: the official
`openai` SDK against the served app, on the tiny model's tool-calling variant.

With a call required, llama.cpp constrains the reply with a grammar built from the tool's
schema and parses the call out of it, so even random weights give a well-formed call; the
variant's weights make that call the same every time (see `write_tool_gguf`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmmux.errors import ContextLengthExceeded
from llmmux.local.bridge import Emit
from llmmux.local.engines.xllamacpp import XLlamaCppModel
from llmmux.router import Router
from llmmux.server.app import App
from local.fixtures import tiny_gguf, tool_gguf  # noqa: F401  (fixtures)
from local.serving import serving

ASK: Any = [{"role": "user", "content": "what is the weather in paris"}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "enum": ["paris", "london"]}, "days": {"type": "integer"}},
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
ROOM: Any = {"max_tokens": 120, "temperature": 0}  # a call is spelt out a character at a time


def first_call(reply: Any) -> Any:
    """The reply's first tool call (typed loosely: the SDK's is a union of call kinds)."""
    calls = reply.choices[0].message.tool_calls
    assert calls, reply
    return calls[0]


def config(tools: Path, plain: Path, engine: str = "xllamacpp") -> dict[str, Any]:
    return {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "engine": engine,
                "n_threads": 1,
                "models": [{"name": "tools", "path": str(tools)}, {"name": "plain", "path": str(plain)}],
            }
        }
    }


@pytest.fixture(scope="module")
def base(tool_gguf: Path, tiny_gguf: Path) -> Iterator[str]:  # noqa: F811
    with serving(App(Router.from_config(config(tool_gguf, tiny_gguf)))) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as sdk:
        yield sdk


def test_a_required_call_comes_back_as_tool_calls(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tools", messages=ASK, tools=[WEATHER, TIME], tool_choice="required", **ROOM
    )
    assert reply.choices[0].finish_reason == "tool_calls"
    call = first_call(reply)
    assert call.type == "function" and call.id and call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert arguments["city"] in ("paris", "london") and isinstance(arguments["days"], int)


def test_streamed_tool_call_deltas_add_up_to_the_same_call(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="tools", messages=ASK, tools=[WEATHER], tool_choice="required", **ROOM)
    chunks = list(
        client.chat.completions.create(
            model="tools", messages=ASK, tools=[WEATHER], tool_choice="required", stream=True, **ROOM
        )
    )
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "get_weather"
    assert {d.index for d in deltas} == {0}
    arguments = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert arguments == first_call(whole).function.arguments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_a_named_function_is_the_one_called(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="tools",
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        **ROOM,
    )
    call = first_call(reply)
    assert call.function.name == "get_time"
    assert isinstance(json.loads(call.function.arguments)["utc"], bool)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="tools",
            messages=ASK,
            tools=[WEATHER],
            tool_choice={"type": "function", "function": {"name": "get_time"}},
            **ROOM,
        )
    assert caught.value.body["param"] == "tool_choice"


def test_a_tool_result_turn_is_rendered_and_answered(client: openai.OpenAI) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "paris", "days": 1}'},
    }
    turn = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24 degrees"},
    ]
    before = client.chat.completions.create(model="tools", messages=ASK, tools=[WEATHER], **ROOM)
    after = client.chat.completions.create(model="tools", messages=turn, tools=[WEATHER], **ROOM)
    assert after.choices[0].finish_reason == "stop"  # the variant, left to choose, ends its turn
    assert after.usage and before.usage and after.usage.prompt_tokens > before.usage.prompt_tokens + 20


def test_a_template_without_tools_gets_the_built_in_one(client: openai.OpenAI) -> None:
    # The plain variant's ChatML template ignores tools: llmmux writes them into the prompt.
    offered = client.chat.completions.create(model="plain", messages=ASK, tools=[WEATHER], max_tokens=3)
    declined = client.chat.completions.create(
        model="plain", messages=ASK, tools=[WEATHER], tool_choice="none", max_tokens=3
    )
    assert offered.usage and declined.usage and offered.usage.prompt_tokens > declined.usage.prompt_tokens + 50
    assert offered.choices[0].message.content and declined.choices[0].message.content
    # Its toy vocabulary cannot spell a JSON call, so llama.cpp refuses the grammar of a
    # required call: the request runs again on the prompt alone, and its text is the answer.
    required = client.chat.completions.create(
        model="plain", messages=ASK, tools=[WEATHER], tool_choice="required", max_tokens=3
    )
    assert required.choices[0].message.content and required.choices[0].finish_reason == "length"


async def test_tool_fields_reach_the_engine(
    tool_gguf: Path,  # noqa: F811
    tiny_gguf: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict[str, Any]] = []
    chat = XLlamaCppModel.chat

    def recording(self: XLlamaCppModel, body: bytes, emit: Emit) -> None:
        sent.append(json.loads(body))
        chat(self, body, emit)

    monkeypatch.setattr(XLlamaCppModel, "chat", recording)
    async with Router.from_config(config(tool_gguf, tiny_gguf)) as router:
        done = await router.chat(
            model="tools",
            messages=ASK,
            tools=[WEATHER, TIME],
            parallel_tool_calls=False,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
            **ROOM,
        )
    assert done.response.choices[0].message.tool_calls
    body = sent[0]
    # llama.cpp takes no named choice: that tool alone, required, asks for the same.
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("required", False)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]
    assert body["tools"][0]["function"]["parameters"] == WEATHER["function"]["parameters"]


async def test_llama_cpp_python_calls_a_required_or_named_tool(tool_gguf: Path, tiny_gguf: Path) -> None:  # noqa: F811
    pytest.importorskip("llama_cpp")
    async with Router.from_config(config(tool_gguf, tiny_gguf, engine="llama_cpp_python")) as router:
        required = await router.chat(model="tools", messages=ASK, tools=[WEATHER], tool_choice="required", **ROOM)
        named = await router.chat(
            model="tools",
            messages=ASK,
            tools=[WEATHER, TIME],
            **ROOM,
            tool_choice={"type": "function", "function": {"name": "get_time"}},
        )
    for done, name in ((required, "get_weather"), (named, "get_time")):
        calls = done.response.choices[0].message.tool_calls
        assert calls and calls[0].name == name and isinstance(json.loads(calls[0].arguments), dict)


async def test_tools_too_long_for_the_context_are_sent_again_in_brief(tiny_gguf: Path) -> None:  # noqa: F811
    wordy: Any = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The forecast. " + "Long words about the weather. " * 60,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "the city " * 30}},
                "required": ["city"],
            },
        },
    }
    models = [{"name": "wide", "path": str(tiny_gguf), "n_ctx": 1024}, {"name": "narrow", "path": str(tiny_gguf)}]
    config: Any = {
        "providers": {"local": {"type": "llama_cpp", "engine": "xllamacpp", "n_threads": 1, "models": models}}
    }
    config["providers"]["local"]["models"][1]["n_ctx"] = 256
    async with Router.from_config(config) as router:
        # In full the tool is ~2,900 of the toy vocabulary's tokens; in brief it fits in 1,024.
        done = await router.chat(model="wide", messages=ASK, tools=[wordy], max_tokens=2)
        assert done.response.usage is not None and 300 < done.response.usage.prompt_tokens < 1024
        with pytest.raises(ContextLengthExceeded):
            await router.chat(model="narrow", messages=ASK, tools=[wordy], max_tokens=2)
