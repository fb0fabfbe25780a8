"""Codex CLI for real: `codex exec` -> `llmmux serve` -> fake upstreams, with a tool round trip.

The pinned Codex (see `support.codex`, installed from npm once per session; no Node is a
failure, not a skip) runs with the README's provider block against `llmmux serve`. Both
translation pairs of the Responses door are driven: an OpenAI backend reached through its
own `/v1/responses` (passthrough: Codex's body, namespace and hosted `web_search` tool
included, arrives with only `model` rewritten) and an OpenAI-compatible chat backend
(translation: the namespace flattened, `web_search` dropped). In each, Codex runs its shell
tool on a file the test wrote, sends the output back, and prints the answer quoting it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.codex import ANSWER, CLIENT_KEY, NOTE, README_MODEL, SHELL_CALL_ID, Workspace, round_trip, run_codex
from support.codex import codex_cli
from support.gateway import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

UPSTREAM_KEY = "sk-upstream-only-key"
CHAT_MODEL = "local-coder"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents" / "codex"


@pytest.fixture(scope="session")
def codex() -> Path:
    return codex_cli()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=UPSTREAM_KEY, models=["gpt-up", "chat-up"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`llmmux serve` with an OpenAI backend and an OpenAI-compatible one; yields its /v1 URL."""
    config = {
        "health_checks": {"enabled": False},
        "providers": {
            "openai": {"type": "openai", "base_url": upstream.url, "api_key": UPSTREAM_KEY, "models": ["gpt-up"]},
            "chat": {
                "type": "openai_compatible",
                "base_url": upstream.url,
                "api_key": UPSTREAM_KEY,
                "models": ["chat-up"],
            },
        },
        "routing": {
            "exact_matches": {
                README_MODEL: {"provider": "openai", "model": "gpt-up"},
                CHAT_MODEL: {"provider": "chat", "model": "chat-up"},
            }
        },
    }
    path = tmp_path_factory.mktemp("llmmux") / "llmmux.yaml"
    path.write_text(json.dumps(config))
    port = free_port()
    process = start_serve(path, port)
    try:
        wait_healthy(port, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        log = stop_serve(process)
        assert CLIENT_KEY not in log and UPSTREAM_KEY not in log


def finished(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"codex exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def shape(body: Any) -> tuple[list[str], list[tuple[str, str | None]]]:
    """What a Codex request is made of: its fields, and its tools by type and name."""
    return sorted(body), [(t["type"], t.get("name")) for t in body["tools"]]


def test_codex_through_openai_responses_passthrough(
    codex: Path, gateway: str, upstream: FakeOpenAI, tmp_path: Path
) -> None:
    upstream.reset()
    workspace = Workspace.create(tmp_path, gateway)
    upstream.script(*round_trip(workspace), path="/v1/responses")
    assert NOTE in finished(run_codex(codex, workspace))
    first, second = upstream.requests_to("/v1/responses")
    assert first.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert first.json["model"] == "gpt-up" and first.json["stream"] is True
    golden = json.loads((FIXTURES / "first-turn.body.json").read_text())
    assert shape(first.json) == shape(golden)  # Codex still sends what the golden fixtures hold
    tools = {t["type"] for t in first.json["tools"]}
    assert {"namespace", "web_search", "function"} <= tools  # passed through as Codex sent them
    outputs = [i for i in second.json["input"] if i.get("type") == "function_call_output"]
    assert [o["call_id"] for o in outputs] == [SHELL_CALL_ID] and NOTE in outputs[0]["output"]


def test_codex_through_chat_translation(codex: Path, gateway: str, upstream: FakeOpenAI, tmp_path: Path) -> None:
    upstream.reset()
    workspace = Workspace.create(tmp_path, gateway)
    upstream.script(*round_trip(workspace), path="/v1/chat/completions")
    output = finished(run_codex(codex, workspace, ["-m", CHAT_MODEL]))
    assert ANSWER in output
    first, second = upstream.requests_to("/v1/chat/completions")
    names = [t["function"]["name"] for t in first.json["tools"]]
    assert "exec_command" in names and "multi_agent_v1__spawn_agent" in names
    assert all(t["type"] == "function" for t in first.json["tools"])  # web_search dropped
    results = [m for m in second.json["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in results] == [SHELL_CALL_ID] and NOTE in results[0]["content"]
