"""`llmmux serve` as a real process for the bad-input tests: a master key, a SQLite ledger,
a fake OpenAI backend for every door and a fake Ollama for model management."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI
from upstreams.ollama_server import FakeOllama

MASTER = "sk-master-bad-input-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def gateway_config(openai_url: str, ollama_url: str, ledger: Path, **server: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER, **server},
        "ledger": {"path": str(ledger), "flush_interval": 0.05},
        "logging": {"format": "json"},
        "health_checks": {"enabled": False, "passive": False},
        "providers": {
            "main": {
                "type": "openai_compatible",
                "base_url": openai_url,
                "models": ["m1", "text-embedding-3-small"],
            },
            "local": {"type": "ollama", "base_url": ollama_url, "models": ["llama3.2:latest"]},
        },
        "routing": {
            "exact_matches": {
                "chat": {"provider": "main", "model": "m1"},
                "embed": {"provider": "main", "model": "text-embedding-3-small"},
                "raw": {"provider": "main", "model": "m1", "pass_unchecked_params": True},
                "llama3.2:latest": {"provider": "local", "model": "llama3.2:latest"},
            },
            "patterns": [{"pattern": "^pat/(.+)$", "provider": "main", "model": "\\1"}],
        },
    }


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    ledger: Path
    openai: FakeOpenAI
    ollama: FakeOllama
    output: list[str] = field(default_factory=list)

    def client(self, key: str | None = MASTER, **kwargs: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def ledger_rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.ledger) as db:
            return db.execute(query, args).fetchall()


@contextmanager
def served(tmp: Path, **server: Any) -> Iterator[Served]:
    """A started `llmmux serve`; on exit it is stopped and its whole output is in `output[0]`."""
    with FakeOpenAI() as openai_up, FakeOllama() as ollama_up:
        ledger = tmp / "ledger.db"
        config = tmp / "llmmux.yaml"
        config.write_text(yaml.safe_dump(gateway_config(openai_up.url, ollama_up.url, ledger, **server)))
        port = free_port()
        process = start_serve(config, port)
        gateway = Served(f"http://127.0.0.1:{port}", process, ledger, openai_up, ollama_up)
        try:
            wait_healthy(port, process)
            yield gateway
        finally:
            gateway.output.append(stop_serve(process))
