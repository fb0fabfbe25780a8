"""Every Python example in docs/ runs, against fake upstreams standing in for the local servers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from upstreams import FakeOpenAI

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
LOCAL_URLS = ("http://127.0.0.1:11434/v1", "http://127.0.0.1:8080/v1")


def examples() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for i, block in enumerate(BLOCK.findall(page.read_text())):
            found.append((f"{page.name}#{i + 1}", block))
    return found


@pytest.mark.parametrize(("where", "code"), examples(), ids=[w for w, _ in examples()])
def test_example_runs(where: str, code: str, tmp_path: Path) -> None:
    with FakeOpenAI() as ollama, FakeOpenAI() as llamacpp:
        for url, fake in zip(LOCAL_URLS, (ollama, llamacpp), strict=True):
            code = code.replace(url, fake.url)
        script = tmp_path / "example.py"
        script.write_text(code)
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
    assert result.stdout.strip(), f"{where} printed nothing"
