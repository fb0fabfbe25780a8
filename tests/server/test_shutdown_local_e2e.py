"""SIGTERM while an in-process model generates: the gateway stops at once, not when the model would.

The server waits for open responses before it stops, and a local generation runs until its
token limit: minutes, on a slow model. At shutdown the gateway ends each generation at
its next token, the client gets the stream's in-band error, and the ledger its row.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import yaml

from local.fixtures import smollm2_path  # noqa: F401  (fixture)
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy

LONG_REPLY = 8000  # tokens: minutes of SmolLM2 on a CPU
EXIT_WITHIN_S = 10.0
NO_END_OF_TEXT = {"0": -100, "2": -100}  # SmolLM2's <|endoftext|> and <|im_end|>: it cannot stop by itself


def test_sigterm_ends_a_local_generation_and_the_gateway_exits_cleanly(
    tmp_path: Path,
    smollm2_path: Path,  # noqa: F811
) -> None:
    ledger = tmp_path / "l.db"
    model = {"name": "smol", "path": str(smollm2_path), "max_output_tokens": LONG_REPLY, "loop_guard": False}
    config = {
        "ledger": {"path": str(ledger), "flush_interval": 0.05},
        "providers": {"local": {"type": "llama_cpp", "n_threads": 1, "models": [model]}},
    }
    path = tmp_path / "llmmux.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = start_serve(path, port, ["--no-reload"])
    lines: list[str] = []
    try:
        wait_healthy(port, process, limit=60)
        body = {
            "model": "smol",
            "stream": True,
            "max_tokens": LONG_REPLY,
            "logit_bias": NO_END_OF_TEXT,
            "messages": [{"role": "user", "content": "Tell me a very long story."}],
        }

        def read() -> None:
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            with httpx.stream("POST", url, json=body, timeout=120) as response:
                lines.extend(line for line in response.iter_lines() if line)

        client = threading.Thread(target=read)
        client.start()
        deadline = time.monotonic() + 60
        while len(lines) < 5 and client.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(lines) >= 5, lines  # the model is generating
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=EXIT_WITHIN_S)
        client.join(timeout=EXIT_WITHIN_S)
        assert not client.is_alive()
    finally:
        if process.poll() is None:
            stop_serve(process)
        process.communicate()
    assert process.returncode == 0
    assert lines[-1] != "data: [DONE]"  # not the whole reply: the stream ended with an error
    error = json.loads(lines[-1].removeprefix("data: "))["error"]
    assert "the gateway is shutting down" in error["message"]
    with sqlite3.connect(ledger) as db:
        rows = db.execute("SELECT status, error_kind, completion_tokens FROM requests").fetchall()
    assert len(rows) == 1
    status, kind, tokens = rows[0]
    assert (status, kind) == (502, "stream_interrupted") and tokens < LONG_REPLY
