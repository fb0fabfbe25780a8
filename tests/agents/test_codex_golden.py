"""Codex's captured requests replayed through the gateway, without Node.

`tests/fixtures/agents/codex/` holds the exact requests the pinned Codex sent (written by
`capture_codex.py`; `test_codex.py` checks that Codex still sends that shape): the first
turn (namespace and hosted `web_search` tools, `include`, `prompt_cache_key`,
`client_metadata`, `store: false`, `reasoning`) and the turn carrying the shell tool's output.
Each is sent as Codex sent it, headers included, to an OpenAI backend's own `/v1/responses`
(passthrough) and to an OpenAI-compatible chat backend (translation).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.codex import NOTE, SHELL_CALL_ID, readme_config
from llmmux.config.model import DEFAULT_HOST, DEFAULT_PORT
from support import Gateway
from upstreams import FakeOpenAI, reply, tool_call

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "codex"
CODEX_MODEL = "gpt-5.1-codex"  # what the fixtures ask for
CHAT_MODEL = "local-coder"


def fixture(turn: str) -> tuple[dict[str, str], dict[str, Any]]:
    meta = json.loads((FIXTURES / f"{turn}.request.json").read_text())
    return meta["headers"], json.loads((FIXTURES / f"{turn}.body.json").read_text())


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=["gpt-up", "chat-up"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI) -> Iterator[Gateway]:
    config = {
        "providers": {
            "openai": {"type": "openai", "base_url": upstream.url, "api_key": "sk-up", "models": ["gpt-up"]},
            "chat": {"type": "openai_compatible", "base_url": upstream.url, "models": ["chat-up"]},
        },
        "routing": {
            "exact_matches": {
                CODEX_MODEL: {"provider": "openai", "model": "gpt-up"},
                CHAT_MODEL: {"provider": "chat", "model": "chat-up"},
            }
        },
    }
    with Gateway(config) as gw:
        yield gw


def replay(gateway: Gateway, turn: str, model: str = CODEX_MODEL) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """The fixture's request as Codex sent it (model aside), and the events of the answer."""
    headers, body = fixture(turn)
    response = gateway.post_raw("/v1/responses", json.dumps({**body, "model": model}).encode(), headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return response, events


def test_the_first_turn_reaches_openai_as_codex_sent_it(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.reset()
    upstream.script(reply(tool_calls=[tool_call("exec_command", {"cmd": "cat note.txt"}, id=SHELL_CALL_ID)]))
    response, events = replay(gateway, "first-turn")
    _, body = fixture("first-turn")
    assert upstream.requests_to("/v1/responses")[-1].json == {**body, "model": "gpt-up"}
    assert "x-llmmux-dropped-params" not in response.headers
    final = events[-1]["response"]
    assert events[-1]["type"] == "response.completed" and final["model"] == CODEX_MODEL
    assert [(i["type"], i["name"], i["call_id"]) for i in final["output"]] == [
        ("function_call", "exec_command", SHELL_CALL_ID)
    ]


def test_the_first_turn_on_a_chat_backend(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.reset()
    upstream.script(reply(tool_calls=[tool_call("exec_command", {"cmd": "cat note.txt"}, id=SHELL_CALL_ID)]))
    response, events = replay(gateway, "first-turn", CHAT_MODEL)
    assert response.headers["x-llmmux-dropped-params"] == "web_search"
    _, body = fixture("first-turn")
    sent = upstream.requests_to("/v1/chat/completions")[-1].json
    expected: list[str] = []
    for tool in body["tools"]:
        if tool["type"] == "function":
            expected.append(tool["name"])
        elif tool["type"] == "namespace":
            expected += [f"{tool['name']}__{inner['name']}" for inner in tool["tools"]]
    assert [t["function"]["name"] for t in sent["tools"]] == expected
    assert [m["role"] for m in sent["messages"]] == [i["role"] for i in body["input"]]
    assert (sent["parallel_tool_calls"], sent["tool_choice"], sent["stream"]) == (True, "auto", True)
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    call = events[-1]["response"]["output"][0]
    assert (call["type"], call["name"], call["call_id"]) == ("function_call", "exec_command", SHELL_CALL_ID)


def test_the_tool_output_turn_on_both_backends(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.reset()
    _, body = fixture("tool-output")
    replay(gateway, "tool-output")
    assert upstream.requests_to("/v1/responses")[-1].json == {**body, "model": "gpt-up"}
    _, events = replay(gateway, "tool-output", CHAT_MODEL)
    messages = upstream.requests_to("/v1/chat/completions")[-1].json["messages"]
    call = next(m for m in messages if m.get("tool_calls"))
    assert [c["function"]["name"] for c in call["tool_calls"]] == ["exec_command"]
    result = next(m for m in messages if m["role"] == "tool")
    assert result["tool_call_id"] == SHELL_CALL_ID and NOTE in result["content"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"].startswith("echo: ")


def test_the_readme_block_points_codex_at_llmmux_s_responses_door() -> None:
    config = tomllib.loads(readme_config())
    assert (config["model"], config["model_provider"]) == (CODEX_MODEL, "llmmux")
    assert config["model_providers"]["llmmux"] == {
        "name": "llmmux",
        "base_url": f"http://{DEFAULT_HOST}:{DEFAULT_PORT}/v1",
        "wire_api": "responses",
        "env_key": "LLMMUX_API_KEY",
    }
