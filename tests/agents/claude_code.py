"""Running Claude Code against a base URL, and the tool round trip the fake upstreams script.

The round trip: the first turn answers with a call of Claude Code's built-in `Read` tool on a
file the test wrote into the working directory; Claude Code runs it and sends the file back
as a `tool_result`; the second turn answers with text quoting it. The settings are the ones
the README's "Claude Code" section gives (`README_ENV`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from support.agents import CLAUDE_CODE_OFFLINE_ENV
from upstreams import Behaviour, reply, tool_call
from upstreams import anthropic_server as anthropic_fake

RUN_TIMEOUT_S = 120
NOTE = "The launch code is 7-4-1-9, filed under orchid."
ANSWER = f"The file says: {NOTE}"
READ_CALL_ID = "toolu_01ReadNotes0001"

README_ENV = ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", *CLAUDE_CODE_OFFLINE_ENV)
"""The environment variables the README's "Claude Code" section sets, in its order."""


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
    executable: Path, base_url: str, api_key: str, workspace: Workspace, args: Sequence[str]
) -> subprocess.CompletedProcess[str]:
    """`claude -p ...` with the README's settings, HOME in the workspace, and a bounded run time."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workspace.home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        **CLAUDE_CODE_OFFLINE_ENV,
    }
    return subprocess.run(
        [str(executable), "-p", *args, "--allowedTools", "Read"],
        cwd=workspace.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
