"""Claude Code, the real CLI, through `llmmux serve`: a `Read` tool round trip on each translation pair.

Anthropic door -> Anthropic backend (passthrough: the body as sent but for `model`, with the
client's `?beta=true`, `anthropic-beta` and `anthropic-version`), and Anthropic door ->
OpenAI-format backend (translation). Each run exits 0 with the file's content in its answer.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents.claude_code import ANSWER, NOTE, READ_CALL_ID, Workspace, round_trip, run_claude
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI, FakeUpstream, RecordedRequest
from upstreams.anthropic_server import API_KEY, FakeAnthropic

pytestmark = pytest.mark.timeout(300)

OPENAI_KEY = "sk-openai-test-0123456789"
CLIENT_KEY = "sk-any-client-key"  # no keys configured: llmmux takes any
UPSTREAM_CLAUDE = "claude-opus-4-8"
UPSTREAM_GPT = "gpt-5.1"
MODEL_FLAG = "claude-sonnet-4-5"

CONFIG = """
providers:
  upstream:
    type: {type}
    base_url: "{url}"
    api_key: "{key}"
routing:
  patterns:
    - {{pattern: "^claude-", provider: upstream, model: "{model}"}}
"""


@dataclass
class Pair:
    """One `llmmux serve` in front of one fake upstream; `messages_path` is where chat requests land."""

    name: str
    upstream: FakeUpstream
    base_url: str
    messages_path: str
    model: str

    @property
    def openai(self) -> bool:
        return self.name == "openai"

    def chat_requests(self) -> list[RecordedRequest]:
        return self.upstream.requests_to(self.messages_path)


def _serve(tmp: Path, name: str, upstream: FakeUpstream, key: str, model: str, path: str) -> Iterator[Pair]:
    config = tmp / f"{name}.yaml"
    kind = "anthropic" if name == "anthropic" else "openai"
    config.write_text(CONFIG.format(type=kind, url=upstream.url, key=key, model=model))
    port = free_port()
    process = start_serve(config, port)
    try:
        wait_healthy(port, process)
        yield Pair(name, upstream, f"http://127.0.0.1:{port}", path, model)
    finally:
        output = stop_serve(process)
        assert "Traceback" not in output, output


@pytest.fixture(scope="module", params=["anthropic", "openai"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "anthropic":
        with FakeAnthropic() as up:
            yield from _serve(tmp, "anthropic", up, API_KEY, UPSTREAM_CLAUDE, "/v1/messages")
    else:
        with FakeOpenAI(api_key=OPENAI_KEY) as up:
            yield from _serve(tmp, "openai", up, OPENAI_KEY, UPSTREAM_GPT, "/v1/chat/completions")


def claude_run(claude: Path, pair: Pair, workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    pair.upstream.reset()
    pair.upstream.script(*round_trip(workspace, openai=pair.openai), path=pair.messages_path)
    done = run_claude(claude, pair.base_url, CLIENT_KEY, workspace, ["Read notes.txt and tell me what it says", *args])
    assert done.returncode == 0, f"claude exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert pair.upstream.pending == 0, "Claude Code did not make both turns"
    return done


def assert_round_trip(pair: Pair) -> None:
    """Two turns reached the upstream, the second carrying the file the `Read` tool returned."""
    first, second = pair.chat_requests()[-2:]
    assert first.json["model"] == second.json["model"] == pair.model
    if pair.openai:
        results = [m for m in second.json["messages"] if m["role"] == "tool"]
        assert results[-1]["tool_call_id"] == READ_CALL_ID
        assert NOTE in json.dumps(results[-1]["content"])
    else:
        last = second.json["messages"][-1]["content"]
        result = next(b for b in last if b["type"] == "tool_result")
        assert result["tool_use_id"] == READ_CALL_ID and NOTE in json.dumps(result["content"])


def test_default_model_streaming_text(claude: Path, pair: Pair, tmp_path: Path) -> None:
    done = claude_run(claude, pair, Workspace.create(tmp_path))
    assert ANSWER in done.stdout
    assert_round_trip(pair)
    first = pair.chat_requests()[-2]
    if pair.openai:
        # The mid-conversation system turn stands where Claude Code put it; the effort maps.
        roles = [m["role"] for m in first.json["messages"]]
        assert roles[:3] == ["system", "user", "system"], roles
        assert first.json["reasoning_effort"] == "medium" and first.json["stream"] is True
        assert "Read" in [t["function"]["name"] for t in first.json["tools"]]
        assert "anthropic-beta" not in first.headers
    else:
        assert_passthrough(first)


def assert_passthrough(record: RecordedRequest, *, system_turn: bool = True) -> None:
    """What Claude Code sends reaches Anthropic: query, beta header, version and every body field.

    For its default model it also sends a mid-conversation system turn (not for `--model` Sonnet).
    """
    assert record.query == {"beta": "true"}
    betas = record.headers["anthropic-beta"].split(",")
    assert {"claude-code-20250219", "context-management-2025-06-27"} <= set(betas)
    assert record.headers["anthropic-version"] == "2023-06-01"
    assert record.headers["x-api-key"] == API_KEY  # the provider's key, never the client's
    body: dict[str, Any] = record.json
    assert {"context_management", "thinking", "system", "tools", "metadata"} <= set(body)
    assert any(m["role"] == "system" for m in body["messages"]) is system_turn


def test_model_flag_json_output(claude: Path, pair: Pair, tmp_path: Path) -> None:
    done = claude_run(claude, pair, Workspace.create(tmp_path), "--model", MODEL_FLAG, "--output-format", "json")
    result = json.loads(done.stdout)
    assert result["is_error"] is False and ANSWER in result["result"]
    assert_round_trip(pair)
    if not pair.openai:
        assert_passthrough(pair.chat_requests()[-2], system_turn=False)


def test_stream_json_output(claude: Path, pair: Pair, tmp_path: Path) -> None:
    done = claude_run(claude, pair, Workspace.create(tmp_path), "--output-format", "stream-json", "--verbose")
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    uses = [
        block
        for event in events
        if event.get("type") == "assistant"
        for block in event["message"]["content"]
        if block.get("type") == "tool_use"
    ]
    assert [u["name"] for u in uses] == ["Read"]
    assert events[-1]["type"] == "result" and ANSWER in events[-1]["result"]


def test_continue_sends_the_earlier_conversation(claude: Path, pair: Pair, tmp_path: Path) -> None:
    workspace = Workspace.create(tmp_path)
    claude_run(claude, pair, workspace)
    pair.upstream.reset()
    pair.upstream.script(*round_trip(workspace, openai=pair.openai)[1:], path=pair.messages_path)
    done = run_claude(claude, pair.base_url, CLIENT_KEY, workspace, ["--continue", "What did the file say?"])
    assert done.returncode == 0, f"claude exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert ANSWER in done.stdout
    (continued,) = pair.chat_requests()
    assert NOTE in json.dumps(continued.json["messages"])  # the earlier tool result came along
    assert "What did the file say?" in json.dumps(continued.json["messages"][-3:])
