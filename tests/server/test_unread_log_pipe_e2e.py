"""A gateway whose stderr is a pipe nobody reads keeps answering: log writes never block the loop.

The config names routes that do not exist under `routing_strategy.routes`, with names long
enough that one start's warnings overfill a pipe's buffer (64 KiB on Linux), and every
reload logs them again on the event loop. A handler that wrote on the caller's thread
would block for good at the first of them.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import yaml

from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

MASTER = "sk-master-unread-pipe-0123456789"
GHOST_ROUTES = 8
GHOST_NAME_CHARS = 20_000  # eight warnings of this length: more than twice a pipe's buffer
REQUESTS = 20


def test_an_unread_stderr_pipe_does_not_stop_requests(tmp_path: Path) -> None:
    ghosts = {f"ghost-{i}-" + "x" * GHOST_NAME_CHARS: "quality" for i in range(GHOST_ROUTES)}
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "ledger": {"path": str(tmp_path / "l.db")},
            "health_checks": {"interval": 3600},
            "providers": {"up": {"type": "openai_compatible", "base_url": up.url, "models": ["m1"]}},
            "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m1"}}},
            "routing_strategy": {"routes": ghosts},
        }
        path = tmp_path / "llmmux.yaml"
        path.write_text(yaml.safe_dump(config, width=1 << 20))
        port = free_port()
        process = start_serve(path, port, ["--no-reload"])  # its stdout (and stderr) is never read
        try:
            wait_healthy(port, process, limit=30)
            base, auth = f"http://127.0.0.1:{port}", {"authorization": f"Bearer {MASTER}"}
            with httpx.Client(base_url=base, headers=auth, timeout=10) as client:
                for _ in range(3):  # each reload warns about every ghost again, on the event loop
                    assert client.post("/admin/config/reload").json()["reloaded"] is True
                body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
                for _ in range(REQUESTS):
                    assert client.post("/v1/chat/completions", json=body).status_code == 200
        finally:
            output = stop_serve(process)
    assert process.returncode == 0
    assert "ghost-0-" in output and "no route has that name" in output
