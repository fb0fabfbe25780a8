"""A client that leaves a non-streaming request to an in-process model frees its slot at the
next token, as a stream's does: through a real `llmmux serve`, on the tiny generated GGUF model."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from local.fixtures import tiny_gguf  # noqa: F401  (fixture)
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy

# Without a loop guard the tiny model fills its whole context (2,048 tokens): about two seconds.
LONG = {"model": "tiny", "temperature": 0, "max_tokens": 100_000, "messages": [{"role": "user", "content": "hi"}]}
SHORT = {**LONG, "max_tokens": 4}


@pytest.fixture
def gateway(tmp_path: Path, tiny_gguf: Path) -> Iterator[str]:  # noqa: F811
    model = {"name": "tiny", "path": str(tiny_gguf), "parallel": 1, "loop_guard": False}
    config = {"providers": {"local": {"type": "llama_cpp", "n_threads": 1, "models": [model]}}}
    path = tmp_path / "llmmux.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = start_serve(path, port, ["--no-reload"])
    try:
        wait_healthy(port, process, limit=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_serve(process)


def slots_busy(http: httpx.Client) -> int:
    rows: list[dict[str, Any]] = http.get("/admin/models").json()["data"]
    return int(rows[0]["slots_busy"])


def until(condition: Any, timeout: float) -> float:
    """Seconds until `condition()` holds; fails past `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic() - started


def test_a_client_leaving_a_non_streaming_request_frees_the_slot_at_once(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=60) as http:
        assert http.post("/v1/chat/completions", json=SHORT).status_code == 200  # loaded
        started = time.monotonic()
        whole = http.post("/v1/chat/completions", json=LONG).json()
        generating_s = time.monotonic() - started  # the whole reply, on this machine, now
        assert whole["usage"]["completion_tokens"] > 1000
        body = json.dumps(LONG).encode()
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: llmmux\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", int(gateway.rsplit(":", 1)[1]))) as client:
            client.sendall(head.encode() + body)
            until(lambda: slots_busy(http) == 1, timeout=10)
        freed_s = until(lambda: slots_busy(http) == 0, timeout=generating_s * 3 + 10)
        # Before: the slot stayed busy until the reply nobody reads was whole.
        assert freed_s < generating_s / 3, (freed_s, generating_s)
        started = time.monotonic()
        assert http.post("/v1/chat/completions", json=SHORT).json()["choices"]
        assert time.monotonic() - started < generating_s / 3 + 1
