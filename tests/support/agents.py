"""Real coding agents for end-to-end tests, installed from npm into the repo's `.cache/agents/`.

Claude Code is pinned to one exact release. 2.1.113 and later ship a native executable in a
per-platform npm package (`@anthropic-ai/claude-code-linux-x64`, ...), which npm installs
with the wrapper and its postinstall copies into place: nothing is downloaded when it runs.
This release is one that sends what the issue is about (a mid-conversation system turn,
`?beta=true`, eight betas, `context_management`, adaptive thinking, `output_config.effort`).

Installing is idempotent (a matching version is left alone) and needs node and npm: CI
installs Debian's `nodejs` and `npm`. Run `python tests/support/agents.py` to install ahead of
the tests (about 400 MB, a few seconds from the registry).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.332"
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "agents"
INSTALL_TIMEOUT_S = 600


class AgentMissing(RuntimeError):
    """An agent cannot be installed here (no node or npm, or npm failed)."""


def claude_code() -> Path:
    """The `claude` executable of the pinned release, installed first if need be."""
    package = CACHE / "node_modules" / CLAUDE_CODE_PACKAGE
    if installed_version(package) != CLAUDE_CODE_VERSION:
        npm_install(f"{CLAUDE_CODE_PACKAGE}@{CLAUDE_CODE_VERSION}", CACHE)
    executable = package / "bin" / "claude.exe"
    if not _runs(executable):
        # The postinstall copies the native binary over a stub; npm may have skipped it.
        _run(["node", "install.cjs"], cwd=package)
    if not _runs(executable):
        raise AgentMissing(f"{executable} does not run after installing {CLAUDE_CODE_PACKAGE}@{CLAUDE_CODE_VERSION}")
    return executable


def installed_version(package: Path) -> str | None:
    """The version of the npm package installed at `package`, if any."""
    try:
        return str(json.loads((package / "package.json").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def npm_install(spec: str, prefix: Path) -> None:
    """`npm install spec` into `prefix`; AgentMissing, saying why, when it cannot."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise AgentMissing(f"'{tool}' is not on PATH: install Debian's nodejs and npm packages to run agent tests")
    prefix.mkdir(parents=True, exist_ok=True)
    _run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", spec], cwd=prefix)


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise AgentMissing(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _runs(executable: Path) -> bool:
    try:
        done = subprocess.run([str(executable), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return False
    return done.returncode == 0 and CLAUDE_CODE_VERSION in done.stdout


if __name__ == "__main__":
    print(claude_code())
    sys.exit(0)
