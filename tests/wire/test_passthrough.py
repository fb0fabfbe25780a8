"""llmmux.wire.passthrough: a client's body reaches a same-format upstream as sent, but for what a step changed.

Every step changes the canonical request only; the body follows because the encoder of the
client's own format overlays the fields that changed. These are the steps that do change a
request on its way (parameter aliases, dropped parameters, a local model's caps, tags).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from llmmux import params
from llmmux.local import compat
from llmmux.types import ChatRequest, Message
from llmmux.wire import anthropic as anthropic_wire
from llmmux.wire import completions as completions_wire
from llmmux.wire import openai as openai_wire
from llmmux.wire import responses as responses_wire
from llmmux.wire.responses import upstream as responses_upstream

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
