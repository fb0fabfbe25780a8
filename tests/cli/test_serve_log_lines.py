"""What `llmmux serve` prints for an operator: one line naming the cloud models without a
price (none for local or self-hosted ones), and request lines naming the HTTP call."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import yaml

from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI


def test_unpriced_models_are_one_line_and_request_lines_name_method_and_path(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream:
        config = {
            "providers": {
                # A cloud API's type at a cloud address, without prices for these names: one line for both.
                "cloud": {
                    "type": "groq",
                    "base_url": "https://api.groq.example/v1",
                    "api_key": "k",
                    "models": ["x1", "x2"],
                },
                # The same type pointed at one's own server, and a self-hosted server type: no line.
                "own": {"type": "openai", "base_url": upstream.url, "api_key": "k", "models": ["mine"]},
                "vllm": {"type": "vllm", "base_url": upstream.url, "models": ["served"]},
            },
            "health_checks": {"enabled": False},
        }
        path = tmp_path / "llmmux.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        process = start_serve(path, port, env={"HOME": str(tmp_path)})
        try:
            wait_healthy(port, process)
            base = f"http://127.0.0.1:{port}"
            ok = httpx.post(
                base + "/v1/chat/completions", json={"model": "mine", "messages": [{"role": "user", "content": "hi"}]}
            )
            refused = httpx.post(
                base + "/api/chat", json={"model": "nowhere", "messages": [{"role": "user", "content": "hi"}]}
            )
        finally:
            output = stop_serve(process)
    assert ok.status_code == 200 and refused.status_code >= 400
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    unpriced = [line["msg"] for line in lines if "no price" in line["msg"]]
    assert len(unpriced) == 1 and "cloud/x1, cloud/x2" in unpriced[0]
    assert "own/" not in unpriced[0] and "vllm/" not in unpriced[0]
    requests = {line["path"]: line for line in lines if line["logger"] == "llmmux.requests"}
    assert requests["/v1/chat/completions"]["method"] == "POST"
    assert requests["/v1/chat/completions"]["msg"] == "POST /v1/chat/completions mine 200 own"
    assert requests["/api/chat"]["msg"].startswith("POST /api/chat nowhere 4")
