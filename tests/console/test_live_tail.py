"""The live tail over the admin API: events as requests finish, masked, and no hold on shutdown."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from support import free_port
from support.serve import start_serve, wait_healthy
from upstreams import FakeOpenAI

from .conftest import MASTER

AUTH = {"authorization": f"Bearer {MASTER}"}


def _config(tmp_path: Path, up: FakeOpenAI) -> Path:
    config = tmp_path / "llmmux.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"master_key": MASTER},
                "ledger": {"path": str(tmp_path / "llmmux.db")},
                "health_checks": {"enabled": False},
                "providers": {"p": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]}},
                "routing": {"patterns": [{"pattern": "^sk-.*", "provider": "p", "model": "m"}]},
            }
        )
    )
    return config


def test_the_tail_streams_finished_requests_masked_and_ends_when_the_server_stops(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        port = free_port()
        process = start_serve(_config(tmp_path, up), port)
        try:
            wait_healthy(port, process)
            root = f"http://127.0.0.1:{port}"
            events: list[dict[str, Any]] = []
            opened, ended = threading.Event(), threading.Event()

            def watch() -> None:
                with httpx.stream("GET", f"{root}/admin/requests/stream", headers=AUTH, timeout=30) as stream:
                    assert stream.headers["content-type"].startswith("text/event-stream")
                    for line in stream.iter_lines():
                        opened.set()
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))
                ended.set()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            assert opened.wait(10)
            secretish = "sk-pasted-into-the-model-name-123456"
            sent = time.monotonic()
            reply = httpx.post(
                f"{root}/v1/chat/completions",
                headers=AUTH,
                json={"model": secretish, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert reply.status_code == 200
            request_id = reply.headers["x-request-id"]
            while not events and time.monotonic() - sent < 2:
                time.sleep(0.02)
            assert [e["request_id"] for e in events] == [request_id]
            assert events[0]["status"] == 200 and events[0]["provider"] == "p"
            assert secretish not in json.dumps(events) and events[0]["public_model"].startswith("sk-")

            # A watcher must not keep the server from stopping.
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            assert ended.wait(5)
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
