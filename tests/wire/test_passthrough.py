"""llmmux.wire.passthrough: a client's body reaches a same-format upstream as sent, but for what a step changed.

Every step changes the canonical request only; the body follows because the encoder of the
client's own format overlays the fields that changed. These are the steps that do change a
request on its way (parameter aliases, dropped parameters, a local model's caps, tags).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from llmmux import params
from llmmux.local import compat
from llmmux.providers.base import Provider
from llmmux.providers.registry import create_provider
from llmmux.types import ChatRequest, Message, Tool
from llmmux.wire import anthropic as anthropic_wire
from llmmux.wire import completions as completions_wire
from llmmux.wire import ollama_frontdoor
from llmmux.wire import openai as openai_wire
from llmmux.wire import responses as responses_wire
from llmmux.wire.responses import upstream as responses_upstream
from upstreams import FakeOpenAI, FakeUpstream
from upstreams.anthropic_server import API_KEY as ANTHROPIC_KEY
from upstreams.anthropic_server import FakeAnthropic
from upstreams.ollama_server import FakeOllama

# Fields the canonical form does not model, at the top level and inside a message.
OPENAI_BODY: dict[str, Any] = {
    "model": "public",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hi.", "refusal": None, "annotations": [{"type": "url_citation"}]},
        {"role": "user", "content": "Weather?"},
    ],
    "max_completion_tokens": 400,
    "tools": [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "service_tier": "flex",
    "metadata": {"tags": ["batch"], "trace": "t-1"},
}


def openai_sent(request: ChatRequest) -> bytes:
    return openai_wire.encode_chat_request(request, "upstream", stream=False)


def as_sent(body: dict[str, Any], **changes: Any) -> bytes:
    """`body` re-encoded as the client sent it, with `changes` (None: removed) in place."""
    out = {**body, **changes}
    return msgspec.json.encode({k: v for k, v in out.items() if v is not None})


def test_an_unchanged_openai_body_goes_out_byte_for_byte_but_for_model_and_tags() -> None:
    request = openai_wire.decode_chat_request(OPENAI_BODY)
    assert request.tags == ["batch"] and request.changed() == []
    expected = as_sent(OPENAI_BODY, model="upstream", metadata={"trace": "t-1"})
    assert openai_sent(request) == expected
    assert OPENAI_BODY["metadata"] == {"tags": ["batch"], "trace": "t-1"}  # the client's body is not edited


def test_a_capped_output_and_a_narrowed_tool_change_only_their_own_keys() -> None:
    request = compat.cap_output(compat.force_named_tool(openai_wire.decode_chat_request(OPENAI_BODY)), 100)
    assert request.changed() == ["max_tokens", "tools", "tool_choice"]
    sent = json.loads(openai_sent(request))
    assert sent["messages"] == OPENAI_BODY["messages"]  # the unmodelled message fields stay
    assert "max_completion_tokens" not in sent and sent["max_tokens"] == 100
    assert [t["function"]["name"] for t in sent["tools"]] == ["weather"] and sent["tool_choice"] == "required"
    assert list(sent)[:2] == ["model", "messages"] and sent["service_tier"] == "flex"


def test_an_alias_and_a_dropped_parameter_reach_the_body_from_the_canonical_fields() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temp": 0.3, "top_k": 4, "seed": 7}
    request = params.drop(params.normalise(openai_wire.decode_chat_request(body)), ["top_k"])
    assert json.loads(openai_sent(request)) == {
        "model": "upstream",
        "messages": body["messages"],
        "seed": 7,
        "temperature": 0.3,
    }


def test_an_anthropic_body_keeps_its_betas_and_blocks_when_a_parameter_is_dropped() -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 512,
        "system": [{"type": "text", "text": "Sys.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}
        ],
        "top_k": 5,
        "context_management": {"edits": []},
        "temperature": 1,
    }
    request = anthropic_wire.decode_chat_request(body)
    unchanged = anthropic_wire.encode_chat_request(request, "claude-up", stream=False)
    assert unchanged == as_sent(body, model="claude-up")  # `temperature: 1` stays an integer
    dropped = anthropic_wire.encode_chat_request(params.drop(request, ["top_k"]), "claude-up", stream=False)
    assert dropped == as_sent(body, model="claude-up", top_k=None)


def test_a_responses_body_follows_a_changed_output_limit_only() -> None:
    body = {"model": "gpt-x", "input": "hi", "max_output_tokens": 900, "reasoning": {"effort": "low"}, "store": False}
    ask = responses_wire.decode_request(body)
    chat = responses_wire.chat_request(ask, [])
    assert chat.changed() == []  # the messages made of `input` are not a change
    capped = compat.cap_output(chat, 50)
    sent = json.loads(responses_upstream.encode_request(capped, "gpt-up", stream=False))
    assert sent == {**body, "model": "gpt-up", "max_output_tokens": 50}


def test_a_native_completions_body_passes_through_and_follows_a_drop() -> None:
    body = {"model": "m", "prompt": ["a", "b"], "max_tokens": 9, "echo": True, "seed": 3}
    request = completions_wire.native_request(completions_wire.decode_request(body))
    assert json.loads(completions_wire.encode_request(request, "up", stream=False)) == {**body, "model": "up"}
    dropped = params.drop(request, ["seed"])
    sent = json.loads(completions_wire.encode_request(dropped, "up", stream=False))
    assert sent == {"model": "up", "prompt": ["a", "b"], "max_tokens": 9, "echo": True}


def test_a_request_built_in_python_has_no_passthrough_to_compare() -> None:
    request = ChatRequest(model="m", messages=[Message(role="user", content="hi")])
    assert request.passthrough is None and request.changed() is None


# -- every changeable field, every same-format pair, over real HTTP --
#
# Each case: a client body as its door decodes it, one step that changes one canonical field
# (the steps llmmux runs where one exists: dropping, capping, narrowing tools, aliases; a
# plain field edit where the change comes from configuration), and what the same-format
# upstream must receive under that field's key. Every other key arrives as the client sent it.

Step = Callable[[ChatRequest], ChatRequest]


def _set(**fields: Any) -> Step:
    return lambda request: msgspec.structs.replace(request, **fields)


def _drop(*names: str) -> Step:
    return lambda request: params.drop(request, list(names))


def _extra(**changes: Any) -> Step:
    def step(request: ChatRequest) -> ChatRequest:
        extra = {k: v for k, v in {**request.extra, **changes}.items() if v is not None}
        return msgspec.structs.replace(request, extra=extra)

    return step


_SYSTEM = Message(role="system", content="Answer in French.")
_USER = Message(role="user", content="Bonjour?")
_NEW_TOOL = Tool(name="lookup", description="Find a record.", parameters={"type": "object"})

CHAT_BODY: dict[str, Any] = {
    "model": "public",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?", "x_trace": 1}],
    "max_completion_tokens": 400,
    "temperature": 0.5,
    "stop": ["END"],
    "tools": [
        {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "time", "parameters": {"type": "object"}}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "response_format": {"type": "json_object"},
    "user": "u-1",
    "service_tier": "flex",
    "logit_bias": {"50256": -100},
}
ANTHROPIC_BODY: dict[str, Any] = {
    "model": "claude-x",
    "max_tokens": 512,
    "system": [{"type": "text", "text": "Sys.", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}}]}],
    "temperature": 1,
    "top_k": 5,
    "stop_sequences": ["END"],
    "tools": [
        {"name": "weather", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
        {"name": "time", "input_schema": {"type": "object"}},
    ],
    "tool_choice": {"type": "auto"},
    "metadata": {"user_id": "u-1"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "service_tier": "auto",
}
RESPONSES_BODY: dict[str, Any] = {
    "model": "gpt-x",
    "instructions": "Be brief.",
    "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}],
    "max_output_tokens": 900,
    "temperature": 0.5,
    "tools": [
        {"type": "function", "name": "weather", "parameters": {"type": "object"}, "strict": False},
        {"type": "web_search"},
        {"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "find", "parameters": {}}]},
    ],
    "tool_choice": {"type": "function", "name": "weather"},
    "text": {"format": {"type": "json_object"}, "verbosity": "low"},
    "reasoning": {"effort": "low", "summary": "auto"},
    "parallel_tool_calls": False,
    "user": "u-1",
    "store": False,
    "include": ["reasoning.encrypted_content"],
}
COMPLETIONS_BODY: dict[str, Any] = {
    "model": "m",
    "prompt": "Once upon",
    "max_tokens": 9,
    "temperature": 0.5,
    "stop": "END",
    "seed": 3,
    "logprobs": 2,
    "user": "u-1",
    "echo": True,
    "suffix": "!",
}
OLLAMA_BODY: dict[str, Any] = {
    "model": "llama3.2:latest",
    "messages": [{"role": "user", "content": "Weather?", "images": []}],
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    "format": "json",
    "options": {"temperature": 0.5, "num_predict": 100, "top_k": 5, "mirostat": 1},
    "keep_alive": "5m",
    "think": False,
}

# (pair, field, step, the key that must change, what the upstream must receive under it (None: absent))
CASES: list[tuple[str, str, Step, str, Any]] = [
    ("openai", "messages", _set(messages=[_SYSTEM, _USER]), "messages", [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Bonjour?"}]),
    ("openai", "max_tokens", lambda r: compat.cap_output(r, 100), "max_completion_tokens", None),
    ("openai", "temperature", _drop("temperature"), "temperature", None),
    ("openai", "stop", _set(stop=["STOP"]), "stop", ["STOP"]),
    ("openai", "tools", compat.force_named_tool, "tools", [CHAT_BODY["tools"][0]]),
    ("openai", "tool_choice", compat.force_named_tool, "tool_choice", "required"),
    ("openai", "response_format", _set(response_format=None), "response_format", None),
    ("openai", "user", _set(user="u-2"), "user", "u-2"),
    ("openai", "extra", _extra(logit_bias=None), "logit_bias", None),
    ("anthropic", "messages", _set(messages=[_SYSTEM, _USER]), "system", "Answer in French."),
    ("anthropic", "max_tokens", lambda r: compat.cap_output(r, 100), "max_tokens", 100),
    ("anthropic", "temperature", _set(temperature=0.2), "temperature", 0.2),
    ("anthropic", "top_k", _drop("top_k"), "top_k", None),
    ("anthropic", "stop", _set(stop=None), "stop_sequences", None),
    ("anthropic", "tools", _set(tools=[Tool(name="weather", parameters={"type": "object"})]), "tools", [ANTHROPIC_BODY["tools"][0]]),
    ("anthropic", "tool_choice", _set(tool_choice="required"), "tool_choice", {"type": "any"}),
    ("anthropic", "user", _set(user="u-2"), "metadata", {"user_id": "u-2"}),
    ("anthropic", "extra", _extra(thinking=None), "thinking", None),
    ("responses", "messages", _set(messages=[_SYSTEM, _USER]), "input", [{"role": "user", "content": "Bonjour?"}]),
    ("responses", "instructions", _set(messages=[_SYSTEM, _USER]), "instructions", "Answer in French."),
    ("responses", "max_tokens", lambda r: compat.cap_output(r, 50), "max_output_tokens", 50),
    ("responses", "temperature", _drop("temperature"), "temperature", None),
    ("responses", "hosted_tools", _drop("web_search"), "tools", [RESPONSES_BODY["tools"][0], RESPONSES_BODY["tools"][2]]),
    ("responses", "tools", compat.force_named_tool, "tools", [RESPONSES_BODY["tools"][0], RESPONSES_BODY["tools"][1]]),
    ("responses", "tools added", lambda r: msgspec.structs.replace(r, tools=[*(r.tools or ()), _NEW_TOOL]), "tools", [*RESPONSES_BODY["tools"], {"type": "function", "name": "lookup", "description": "Find a record.", "parameters": {"type": "object"}}]),
    ("responses", "tool_choice", compat.force_named_tool, "tool_choice", "required"),
    ("responses", "response_format", _set(response_format=None), "text", {"verbosity": "low"}),
    ("responses", "user", _set(user="u-2"), "user", "u-2"),
    ("responses", "extra", _extra(reasoning_effort=None), "reasoning", {"summary": "auto"}),
    ("completions", "messages", _set(messages=[_USER]), "prompt", "Bonjour?"),
    ("completions", "max_tokens", lambda r: compat.cap_output(r, 4), "max_tokens", 4),
    ("completions", "temperature", _set(temperature=0.1), "temperature", 0.1),
    ("completions", "stop", _drop("stop"), "stop", None),
    ("completions", "seed", _drop("seed"), "seed", None),
    ("completions", "user", _set(user="u-2"), "user", "u-2"),
    ("completions", "extra", _extra(logprobs=None, top_logprobs=None), "logprobs", None),
    ("ollama", "messages", _set(messages=[_USER]), "messages", [{"role": "user", "content": "Bonjour?"}]),
    ("ollama", "max_tokens", lambda r: compat.cap_output(r, 10), "options", {"temperature": 0.5, "top_k": 5, "num_predict": 10, "mirostat": 1}),
    ("ollama", "top_k", _drop("top_k"), "options", {"temperature": 0.5, "num_predict": 100, "mirostat": 1}),
    ("ollama", "tools", _set(tools=None), "tools", None),
    ("ollama", "tool_choice", _set(tool_choice="none"), "tools", None),
    ("ollama", "response_format", _set(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}), "format", {"type": "object"}),
    ("ollama", "extra", _extra(keep_alive="1h"), "keep_alive", "1h"),
]  # fmt: skip


# Keys one step changes together: a narrowed tool list and its choice, a conversation's
# instructions and input, Anthropic's system and turns, OpenAI's two spellings of the limit.
MOVES_WITH = {
    "tools": ("tool_choice",),
    "tool_choice": ("tools",),
    "input": ("instructions", "previous_response_id"),
    "instructions": ("input", "previous_response_id"),
    "system": ("messages",),
    "max_completion_tokens": ("max_tokens",),
}


class _Pair:
    """A client API, its door's decoder and the provider of the same API on a fake upstream."""

    def __init__(self, body: dict[str, Any], decode: Callable[[dict[str, Any]], ChatRequest], path: str) -> None:
        self.body, self.decode, self.path = body, decode, path


def _responses_chat(body: dict[str, Any]) -> ChatRequest:
    return responses_wire.chat_request(responses_wire.decode_request(body), [])


def _completions_chat(body: dict[str, Any]) -> ChatRequest:
    return completions_wire.native_request(completions_wire.decode_request(body))


PAIRS = {
    "openai": _Pair(CHAT_BODY, openai_wire.decode_chat_request, "/v1/chat/completions"),
    "anthropic": _Pair(ANTHROPIC_BODY, anthropic_wire.decode_chat_request, "/v1/messages"),
    "responses": _Pair(RESPONSES_BODY, _responses_chat, "/v1/responses"),
    "completions": _Pair(COMPLETIONS_BODY, _completions_chat, "/v1/completions"),
    "ollama": _Pair(OLLAMA_BODY, ollama_frontdoor.decode_chat_request, "/api/chat"),
}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, FakeUpstream]]:
    fakes: dict[str, FakeUpstream] = {"openai": FakeOpenAI(), "anthropic": FakeAnthropic(), "ollama": FakeOllama()}
    for fake in fakes.values():
        fake.start()
    yield fakes
    for fake in fakes.values():
        fake.stop()


def _provider(pair: str, fakes: dict[str, FakeUpstream]) -> Provider:
    if pair == "anthropic":
        return create_provider("anthropic", base_url=fakes["anthropic"].url, api_key=ANTHROPIC_KEY)
    if pair == "ollama":
        return create_provider("ollama", base_url=fakes["ollama"].url)
    return create_provider("openai", base_url=fakes["openai"].url, api_key="sk-x", completions="native")


async def _received(pair: str, fakes: dict[str, FakeUpstream], request: ChatRequest) -> dict[str, Any]:
    provider = _provider(pair, fakes)
    try:
        await provider.complete(request, PAIRS[pair].body["model"])
    finally:
        await provider.aclose()
    fake = fakes["openai" if pair in ("responses", "completions") else pair]
    sent = fake.last_request
    assert sent.path == PAIRS[pair].path
    received: dict[str, Any] = json.loads(sent.body)
    return received


@pytest.mark.parametrize(
    ("pair", "step", "key", "expected"), [c[:1] + c[2:] for c in CASES], ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
async def test_a_changed_field_reaches_a_same_format_upstream_and_nothing_else_moves(
    upstreams: dict[str, FakeUpstream], pair: str, step: Step, key: str, expected: Any
) -> None:
    body = PAIRS[pair].body
    request = step(PAIRS[pair].decode(copy.deepcopy(body)))
    assert request.changed(), "the step changed nothing"
    received = await _received(pair, upstreams, request)
    assert received.get(key) == expected, received
    moved = {key, "model", "stream", *MOVES_WITH.get(key, ())}
    if pair == "openai" and key == "max_completion_tokens":
        assert received["max_tokens"] == 100
    for name, value in body.items():
        if name not in moved:
            assert msgspec.json.encode(received.get(name)) == msgspec.json.encode(value), name
    kept = [name for name in body if name in received and name not in moved]
    assert kept == [name for name in received if name in kept], "the client's key order changed"


@pytest.mark.parametrize("pair", list(PAIRS))
async def test_an_unchanged_body_reaches_a_same_format_upstream_as_sent(
    upstreams: dict[str, FakeUpstream], pair: str
) -> None:
    body = PAIRS[pair].body
    request = PAIRS[pair].decode(copy.deepcopy(body))
    assert request.changed() == []
    received = await _received(pair, upstreams, request)
    assert {k: v for k, v in received.items() if k not in ("stream", "stream_options")} == body


def test_a_changed_responses_conversation_goes_out_whole_with_calls_under_their_own_names() -> None:
    """Edited messages replace `input` with the whole conversation llmmux holds (the stored turns
    of `previous_response_id` included, so that id is not sent too), calls named as the client did."""
    body = {
        "model": "gpt-x",
        "input": [{"type": "function_call_output", "call_id": "c2", "output": "patched"}],
        "previous_response_id": "resp_1",
        "tools": [
            {"type": "custom", "name": "apply_patch"},
            {"type": "namespace", "name": "crm", "tools": [{"type": "function", "name": "find"}]},
        ],
    }
    ask = responses_wire.decode_request(body)
    history = responses_wire.input_messages(
        [
            {"role": "user", "content": "Fix it."},
            {"type": "function_call", "call_id": "c1", "name": "find", "namespace": "crm", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "row"},
            {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin"},
        ],
        ask.names,
    )
    chat = responses_wire.chat_request(ask, history)
    edited = msgspec.structs.replace(chat, messages=[Message(role="system", content="Be exact."), *chat.messages])
    sent = json.loads(responses_upstream.encode_request(edited, "gpt-up", stream=False))
    assert "previous_response_id" not in sent and sent["instructions"] == "Be exact."
    assert sent["input"] == [
        {"role": "user", "content": "Fix it."},
        {"type": "function_call", "call_id": "c1", "name": "find", "namespace": "crm", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "row"},
        {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin"},
        {"type": "custom_tool_call_output", "call_id": "c2", "output": "patched"},
    ]
    assert sent["tools"] == body["tools"]  # unchanged: as sent
