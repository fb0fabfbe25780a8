"""Capture Codex's exact requests as golden fixtures: `python tests/agents/capture_codex.py`.

Runs the pinned Codex against the fake OpenAI's own `/v1/responses` (no llmmux in between)
through the README's provider block and the tool round trip of `agents.codex`, and writes
each request it sent to `tests/fixtures/agents/codex/`: `<turn>.request.json` (method, path,
headers without the key, host and length) and `<turn>.body.json` (the body as sent, the
temporary directory replaced by `/tmp/codex-capture`). Re-run it when the pinned version moves.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parents[1] / "src")]

from agents.codex import Workspace, round_trip, run_codex  # noqa: E402
from support.codex import codex_cli  # noqa: E402
from upstreams import FakeOpenAI  # noqa: E402

FIXTURES = HERE.parent / "fixtures" / "agents" / "codex"
TURNS = ("first-turn", "tool-output")
PLACEHOLDER = "/tmp/codex-capture"
UNSAVED_HEADERS = frozenset({"authorization", "host", "content-length"})


def capture() -> None:
    executable = codex_cli()
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as fake:
        workspace = Workspace.create(Path(tmp), fake.url)
        fake.script(*round_trip(workspace), path="/v1/responses")
        done = run_codex(executable, workspace, ["-m", "gpt-5.1-codex"])
        if done.returncode != 0:
            raise SystemExit(f"codex exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        requests = fake.requests_to("/v1/responses")
        if len(requests) != len(TURNS):
            raise SystemExit(f"expected {len(TURNS)} requests, Codex sent {len(requests)}")
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for turn, request in zip(TURNS, requests, strict=True):
            headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in UNSAVED_HEADERS}
            meta = {"method": request.method, "path": request.path, "headers": headers}
            _write(FIXTURES / f"{turn}.request.json", json.dumps(meta, indent=2), tmp)
            _write(FIXTURES / f"{turn}.body.json", json.dumps(request.json, indent=2), tmp)


def _write(path: Path, text: str, tmp: str) -> None:
    path.write_text(text.replace(tmp, PLACEHOLDER) + "\n")
    print(path)


if __name__ == "__main__":
    capture()
