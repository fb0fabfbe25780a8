"""The pinned Claude Code, installed once per session into `.cache/agents/` (fails loudly without Node)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.agents import claude_code


@pytest.fixture(scope="session")
def claude() -> Path:
    return claude_code()
