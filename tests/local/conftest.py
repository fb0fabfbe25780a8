"""Fixtures for local-model tests: real GGUF files (a tiny generated one, SmolLM2) and a clock."""

from __future__ import annotations

import pytest

from local.fixtures import (  # noqa: F401  (fixtures)
    FakeClock,
    embedding_gguf,
    models_dir,
    smollm2_path,
    tiny_gguf,
    tool_gguf,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
