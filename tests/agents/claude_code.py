"""Running Claude Code against a base URL, and the tool round trip the fake upstreams script.

The round trip: the first turn answers with a call of Claude Code's built-in `Read` tool on a
file the test wrote into the working directory; Claude Code runs it and sends the file back
as a `tool_result`; the second turn answers with text quoting it. Claude Code runs with the
settings the README's "Claude Code" section exports (`readme_env`), so the README is what is
tested: only the URL and the key are the test's own.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from upstreams import Behaviour, reply, tool_call
from upstreams import anthropic_server as anthropic_fake

RUN_TIMEOUT_S = 120
NOTE = "The launch code is 7-4-1-9, filed under orchid."
ANSWER = f"The file says: {NOTE}"
READ_CALL_ID = "toolu_01ReadNotes0001"

README = Path(__file__).resolve().parents[2] / "README.md"
EXPORT = re.compile(r"^export (\w+)=(\S+)", re.M)


def readme_env() -> dict[str, str]:
    """The variables the README's "Claude Code" section exports in its first shell block."""
    section = README.read_text().split("\n## Claude Code\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return dict(EXPORT.findall(block))


@dataclass(frozen=True)
class Workspace:
    """A Claude Code session's home (its settings and transcripts) and working directory."""

    home: Path
    cwd: Path

    @classmethod
    def create(cls, root: Path) -> Workspace:
        home, cwd = root / "home", root / "project"
        home.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / "notes.txt").write_text(NOTE + "\n")
        return cls(home, cwd)

    @property
    def notes(self) -> Path:
        return self.cwd / "notes.txt"


def round_trip(workspace: Workspace, *, openai: bool = False) -> list[Behaviour]:
    """The two scripted turns: a `Read` of the notes, then text quoting them."""
    call = tool_call("Read", {"file_path": str(workspace.notes)}, id=READ_CALL_ID)
    if openai:
        return [reply(tool_calls=[call]), reply(ANSWER)]
    return [anthropic_fake.reply(tool_calls=[call]), anthropic_fake.reply(ANSWER)]


def run_claude(
    executable: Path,
    base_url: str,
    api_key: str,
    workspace: Workspace,
    args: Sequence[str],
    timeout_s: float = RUN_TIMEOUT_S,
) -> subprocess.CompletedProcess[str]:
    """`claude -p ...` with the README's settings, HOME in the workspace, and a bounded run time."""
    settings = readme_env()
    assert {"ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"} <= set(settings), settings
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workspace.home),
        **settings,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
    }
    return subprocess.run(
        [str(executable), "-p", *args, "--allowedTools", "Read"],
        cwd=workspace.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
