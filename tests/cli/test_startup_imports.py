"""What `llmmux serve` imports before it is healthy: nothing a plain config does not use.

Start-up time is mostly imports (bench/README.md, "Start-up"): the in-process engines,
native APIs nobody configured, the entry-point scan and optional drivers stay unimported
until a config names them. The gateway runs as a real process under `-X importtime`,
which lists every module the supervisor and its workers import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import free_port
from support.serve import stop_serve, wait_healthy

# Imported only when a config asks for them (a prefix covers its submodules).
NOT_ON_THE_DEFAULT_PATH = (
    "llmmux.local.engines",
    "llmmux.local.gguf",
    "llmmux.local.pool",
    "llmmux.local.loader",
    "llmmux.local.catalog",
    "llmmux.providers.llama_cpp",
    "llmmux.providers.mlx",
    "llmmux.providers.managed",
    "llmmux.providers.gemini",
    "llmmux.providers.bedrock",
    "llmmux.wire.gemini",
    "llmmux.wire.bedrock",
    "importlib.metadata",  # the entry-point scan: only for a type that is not built in
    "asyncpg",
    "redis",
    "valkey",
    "opentelemetry",
    "numpy",
    "botocore",
    "mlx",
    "xllamacpp",
    "llama_cpp",
    "httpx",
    "openai",
    "anthropic",
)
CONFIG = """
providers:
  up:
    type: openai_compatible
    base_url: http://127.0.0.1:9/v1
    models: [m]
"""


def imported_by_serve(folder: Path, workers: int) -> set[str]:
    (folder / "llmmux.yaml").write_text(CONFIG)
    port = free_port()
    log = folder / "importtime.txt"
    with log.open("wb") as errors:  # a file, not a pipe: importtime writes before anyone reads
        process = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "llmmux", "serve", "--config", str(folder / "llmmux.yaml"),
             "--port", str(port), "--workers", str(workers)],
            stdout=subprocess.PIPE, stderr=errors, env=os.environ,
        )  # fmt: skip
        try:
            wait_healthy(port, process)
        finally:
            stop_serve(process)
    names = set()
    for line in log.read_text().splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_serve_with_a_plain_config_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    imported = imported_by_serve(tmp_path, workers=2)
    assert "llmmux.server.workers" in imported  # the listing is real
    heavy = sorted(n for n in imported if n.startswith(NOT_ON_THE_DEFAULT_PATH))
    assert heavy == []
