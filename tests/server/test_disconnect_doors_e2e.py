"""A client that leaves a whole (non-streaming) Responses or completions request to a local model
stops its generation and frees its slots, as at the chat door: a real `llmmux serve` on the tiny
generated GGUF model, a raw-socket client that leaves, the model's slots and the request log read
over the admin API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from local.fixtures import tiny_gguf  # noqa: F401  (fixture)
from support import free_port
from support.leaving import leave, until
from support.serve import start_serve, stop_serve, wait_healthy

# Without a loop guard the tiny model fills its whole context (2,048 tokens): about a second or two.
CHAT = {"model": "tiny", "temperature": 0, "max_tokens": 100_000, "messages": [{"role": "user", "content": "hi"}]}
RESPONSES = {"model": "tiny", "temperature": 0, "max_output_tokens": 100_000, "input": "hi"}
MASTER = "sk-master-disconnect-0000000000"
AUTH = {"authorization": f"Bearer {MASTER}"}
# Two prompts generating at once share the context: 900 tokens each.
COMPLETIONS = {"model": "tiny", "temperature": 0, "max_tokens": 900, "prompt": ["hi", "ho"]}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[str]:  # noqa: F811
    # Two slots, so both prompts of a completions request generate at once.
    model = {"name": "tiny", "path": str(tiny_gguf), "parallel": 2, "loop_guard": False}
    config = {
        "providers": {"local": {"type": "llama_cpp", "n_threads": 1, "models": [model]}},
        "ledger": {"flush_interval": 0.05},
        "server": {"master_key": MASTER},  # the request log is on the admin API
    }
    path = tmp_path_factory.mktemp("disconnect") / "llmmux.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = start_serve(path, port, ["--no-reload"])
    try:
        wait_healthy(port, process, limit=60)
        short = {**CHAT, "max_tokens": 4}
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=short, headers=AUTH, timeout=60)
        assert answer.is_success
        yield f"http://127.0.0.1:{port}"  # the model loaded
    finally:
        stop_serve(process)


def slots_busy(http: httpx.Client) -> int:
    rows: list[dict[str, Any]] = http.get("/admin/models").json()["data"]
    return int(rows[0]["slots_busy"])


def logged(http: httpx.Client, client_api: str) -> list[tuple[int, str | None]]:
    rows: list[dict[str, Any]] = http.get("/admin/requests?limit=100").json()["data"]
    return sorted((row["status"], row["error_kind"]) for row in rows if row["client_api"] == client_api)


@pytest.mark.parametrize(
    ("path", "body", "client_api", "calls"),
    [("/v1/responses", RESPONSES, "openai_responses", 1), ("/v1/completions", COMPLETIONS, "openai_completions", 2)],
    ids=["responses", "completions"],
)
def test_a_client_leaving_a_whole_answer_frees_the_local_models_slots(
    gateway: str, path: str, body: dict[str, Any], client_api: str, calls: int
) -> None:
    with httpx.Client(base_url=gateway, headers=AUTH, timeout=60) as http:
        started = time.monotonic()
        assert http.post(path, json=body).is_success
        generating_s = time.monotonic() - started  # the whole answer, on this machine, now
        leave(
            int(gateway.rsplit(":", 1)[1]),
            path,
            body,
            lambda: slots_busy(http) == calls,
            headers={"Authorization": f"Bearer {MASTER}"},
        )
        freed_s = until(lambda: slots_busy(http) == 0, timeout=generating_s * 3 + 10)
        # Before: the slots stayed busy until the replies nobody reads were whole.
        assert freed_s < generating_s / 3, (freed_s, generating_s)
        # Each routed call (one a prompt) is recorded once: answered the first time, left the second.
        until(lambda: len(logged(http, client_api)) >= 2 * calls, timeout=10)
        assert sorted(logged(http, client_api)) == [(200, None)] * calls + [(499, "client_closed")] * calls
        started = time.monotonic()
        assert http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 4}).json()["choices"]
        assert time.monotonic() - started < generating_s / 3 + 1
