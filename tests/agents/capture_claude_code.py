"""Capture the exact requests Claude Code sends, as the golden fixtures in tests/fixtures/agents/.

    PYTHONPATH=src:tests python tests/agents/capture_claude_code.py

Runs the pinned Claude Code straight at the fake Anthropic API (no gateway between), through
the same tool round trip as the end-to-end tests, and writes each request it made: method,
path, query and headers (the key removed) in `<name>.request.json`, the body byte for byte in
`<name>.body.json`. `test_claude_code_goldens.py` replays them through the gateway without Node.
Rerun it when the pinned version changes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from agents.claude_code import Workspace, round_trip, run_claude
from support.agents import claude_code
from upstreams.anthropic_server import API_KEY, FakeAnthropic
from upstreams.base import RecordedRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
DROPPED_HEADERS = frozenset({"x-api-key", "authorization", "host", "content-length"})
MODEL_FLAG = "claude-sonnet-4-5"
CASES = {
    # name: (extra arguments, names of the requests it makes, in order)
    "default-model": ((), ("claude-code-first-turn", "claude-code-tool-result")),
    "model-flag": (("--model", MODEL_FLAG, "--output-format", "json"), ("claude-code-model-flag", None)),
}


def capture() -> list[Path]:
    executable = claude_code()
    written: list[Path] = []
    with FakeAnthropic() as upstream, tempfile.TemporaryDirectory() as tmp:
        for case, (args, names) in CASES.items():
            workspace = Workspace.create(Path(tmp) / case)
            upstream.reset()
            upstream.script(*round_trip(workspace), path="/v1/messages")
            done = run_claude(executable, upstream.root_url, API_KEY, workspace, ["Read notes.txt", *args])
            if done.returncode != 0:
                raise SystemExit(f"claude exited {done.returncode}: {done.stdout}\n{done.stderr}")
            recorded = upstream.requests_to("/v1/messages")
            for name, record in zip(names, recorded):
                if name is not None:
                    written += _write(name, record)
    return written


def _write(name: str, record: RecordedRequest) -> list[Path]:
    headers = {k.lower(): v for k, v in record.headers.items() if k.lower() not in DROPPED_HEADERS}
    meta = {"method": record.method, "path": record.path, "query": dict(record.query), "headers": headers}
    request, body = FIXTURES / f"{name}.request.json", FIXTURES / f"{name}.body.json"
    FIXTURES.mkdir(parents=True, exist_ok=True)
    request.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    body.write_bytes(record.body)
    return [request, body]


if __name__ == "__main__":
    for path in capture():
        print(path)
    sys.exit(0)
