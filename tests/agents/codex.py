"""Running Codex against a base URL, and the tool round trip the fake upstreams script.

The round trip: the first turn answers with a call of Codex's shell tool (`exec_command`)
running `cat note.txt` on a file the test wrote into the working directory; Codex runs it and
sends the output back as a `function_call_output`; the second turn answers with text quoting
the file. The provider block is the README's "Codex" section, with only `base_url` changed.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from upstreams import Behaviour, reply, tool_call

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 180
NOTE = "The vault code is 3-1-4-1, kept under the fern."
ANSWER = f"note.txt says: {NOTE}"
SHELL_CALL_ID = "call_codex_cat_0001"
KEY_ENV = "LLMMUX_API_KEY"
CLIENT_KEY = "sk-codex-client-key"
README_MODEL = "gpt-5.1-codex"


def readme_config() -> str:
    """The config.toml of the README's "Codex" section, as written there."""
    section = (ROOT / "README.md").read_text().split("\n## Codex\n", 1)[1]
    block = re.search(r"```toml\n(.*?)```", section, re.S)
    assert block is not None, "README's Codex section has no toml block"
    return block.group(1)


def config_for(base_url: str) -> str:
    """The README's config.toml pointing at `base_url`."""
    text, count = re.subn(r'^base_url = ".*"$', f'base_url = "{base_url}"', readme_config(), flags=re.M)
    assert count == 1, "README's Codex block sets base_url once"
    return text


@dataclass(frozen=True)
class Workspace:
    """A Codex session's home (`CODEX_HOME`: config, sessions) and working directory."""

    home: Path
    cwd: Path

    @classmethod
    def create(cls, root: Path, base_url: str) -> Workspace:
        home, cwd = root / "codex-home", root / "project"
        home.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config_for(base_url))
        (cwd / "note.txt").write_text(NOTE + "\n")
        return cls(home, cwd)


def round_trip(workspace: Workspace) -> list[Behaviour]:
    """The two scripted turns: the shell tool reading note.txt, then text quoting it."""
    call = tool_call("exec_command", {"cmd": "cat note.txt", "workdir": str(workspace.cwd)}, id=SHELL_CALL_ID)
    return [reply(tool_calls=[call]), reply(ANSWER)]


def run_codex(
    executable: Path, workspace: Workspace, args: Sequence[str] = (), timeout_s: float = RUN_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """`codex exec` asking about note.txt, non-interactive, with a timeout.

    The sandbox is bypassed: it needs user namespaces that CI containers may not grant, and
    the one command the fake asks for is `cat` on the test's own file.
    """
    env = {**os.environ, "CODEX_HOME": str(workspace.home), KEY_ENV: CLIENT_KEY}
    command = [
        str(executable),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        *args,
        "What does note.txt say? Read it with the shell.",
    ]
    return subprocess.run(
        command,
        cwd=workspace.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
