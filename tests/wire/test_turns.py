"""Mid-conversation system turns (Claude Code's) on each backend: in place, or folded into a user turn."""

from __future__ import annotations

import json
from typing import Any

from llmmux import params
from llmmux.providers.bedrock import BedrockProvider
from llmmux.wire import anthropic, bedrock, gemini, ollama
from llmmux.wire import openai as openai_wire

# The shape of Claude Code 2.1's first request: a user turn, then a system turn after it.
CLAUDE_CODE = {
    "model": "c",
    "max_tokens": 9,
    "system": "You are Claude Code.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>r</system-reminder>"}]},
        {"role": "assistant", "content": "Earlier answer."},
        {"role": "user", "content": "say hi"},
        {"role": "system", "content": [{"type": "text", "text": "# Environment: linux"}]},
    ],
}


def canonical() -> Any:
    return anthropic.decode_chat_request(CLAUDE_CODE)


def test_openai_format_backends_get_the_system_turn_where_it_stands() -> None:
    sent = json.loads(openai_wire.encode_chat_request(canonical(), "gpt", stream=False))
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user", "system"]
    assert sent["messages"][-1]["content"] == "# Environment: linux"


def test_ollama_gets_the_system_turn_where_it_stands() -> None:
    sent = json.loads(ollama.encode_chat_request(canonical(), "llama", stream=False))
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user", "system"]


def test_gemini_keeps_only_the_leading_system_prompt_and_folds_the_late_one_into_the_user_turn() -> None:
    sent = json.loads(gemini.encode_request(canonical()))
    assert sent["systemInstruction"]["parts"] == [{"text": "You are Claude Code."}]
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]
    assert sent["contents"][-1]["parts"] == [{"text": "say hi"}, {"text": "# Environment: linux"}]


def test_bedrock_keeps_only_the_leading_system_prompt_and_folds_the_late_one_into_the_user_turn() -> None:
    sent = json.loads(bedrock.encode_request(canonical()))
    assert sent["system"] == [{"text": "You are Claude Code."}]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][-1]["content"] == [{"text": "say hi"}, {"text": "# Environment: linux"}]


def test_anthropic_upstreams_get_the_body_as_sent_with_only_the_model_changed() -> None:
    sent = json.loads(anthropic.encode_chat_request(canonical(), "claude-opus-4-8", stream=False))
    assert sent == {**CLAUDE_CODE, "model": "claude-opus-4-8"}


def test_cache_control_becomes_bedrock_cache_points_after_the_marked_system_turn_and_tool() -> None:
    marked = {"type": "ephemeral"}
    body = {
        "model": "c",
        "max_tokens": 9,
        "system": [{"type": "text", "text": "Rules.", "cache_control": marked}],
        "tools": [
            {"name": "Read", "input_schema": {"type": "object"}, "cache_control": marked},
            {"name": "Write", "input_schema": {"type": "object"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Long context.", "cache_control": marked}]},
            {"role": "assistant", "content": "Ok."},
            {"role": "user", "content": "Question?"},
        ],
    }
    request = anthropic.decode_chat_request(body)
    sent = json.loads(bedrock.encode_request(request))
    point = {"cachePoint": {"type": "default"}}
    assert sent["system"] == [{"text": "Rules."}, point]
    assert sent["messages"][0]["content"] == [{"text": "Long context."}, point]
    assert sent["messages"][2]["content"] == [{"text": "Question?"}]
    assert [next(iter(t)) for t in sent["toolConfig"]["tools"]] == ["toolSpec", "cachePoint", "toolSpec"]
    assert params.unsupported(request, params.ALL, bedrock.WIRE, BedrockProvider.mapped_fields) == []
    assert params.unsupported(request, params.ALL, openai_wire.WIRE) == ["cache_control"]
