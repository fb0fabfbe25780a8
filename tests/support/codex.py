"""OpenAI's Codex CLI for end-to-end tests, installed from npm into `.cache/agents/codex/`.

Codex is pinned to one exact release. The `@openai/codex` wrapper lists its native
executable as per-platform optional dependencies (`@openai/codex-linux-x64` is an alias of
`@openai/codex@<version>-linux-x64`), so `npm install` brings everything from the registry
and nothing is downloaded when it runs. Its own prefix keeps it apart from the other agents
in `.cache/agents/`.

Installing is idempotent (a matching version is left alone) and needs node and npm: CI
installs Debian's `nodejs` and `npm`. Run `PYTHONPATH=tests python tests/support/codex.py` to install ahead of
the tests (about 420 MB, a few seconds from the registry).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.agents import AgentMissing, installed_version, npm_install

CODEX_VERSION = "0.171.0"
CODEX_PACKAGE = "@openai/codex"
ROOT = Path(__file__).resolve().parents[2]
PREFIX = ROOT / ".cache" / "agents" / "codex"


def codex_cli() -> Path:
    """The `codex` launcher of the pinned release, installed first if need be."""
    package = PREFIX / "node_modules" / CODEX_PACKAGE
    if installed_version(package) != CODEX_VERSION:
        npm_install(f"{CODEX_PACKAGE}@{CODEX_VERSION}", PREFIX)
    launcher = PREFIX / "node_modules" / ".bin" / "codex"
    version = _version(launcher)
    if CODEX_VERSION not in version:
        raise AgentMissing(f"{launcher} does not run after installing {CODEX_PACKAGE}@{CODEX_VERSION}: {version}")
    return launcher


def _version(launcher: Path) -> str:
    try:
        done = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return str(exc)
    return done.stdout + done.stderr


if __name__ == "__main__":
    print(codex_cli())
    sys.exit(0)
