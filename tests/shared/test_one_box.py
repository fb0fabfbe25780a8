"""`llmmux serve --workers 3` acts as one gateway: provider limits hold for all workers together."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx

from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI
from upstreams.base import trickle

WORKERS = "3"

CONFIG = """
providers:
  up:
    type: openai_compatible
    base_url: {url}
    models: [{{name: m}}]
routing:
  exact_matches:
    chat: {{provider: up, model: m}}
rate_limit_settings:
  queue_timeout_seconds: {queue}
  limits:
    up: {{{limits}}}
ledger: {{enabled: false}}
"""


def _config(tmp_path: Path, url: str, limits: str, queue: float) -> Path:
    path = tmp_path / "llmmux.yaml"
    path.write_text(CONFIG.format(url=url, limits=limits, queue=queue))
    return path


async def _burst(port: int, count: int, connections: int) -> Counter[int]:
    """`count` requests at once over many connections (so every worker gets some)."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        answers = await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(count)))
    return Counter(a.status_code for a in answers)


def test_a_provider_rpm_holds_across_three_workers(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        port = free_port()
        process = start_serve(_config(tmp_path, up.url, "rpm: 60", 0.01), port, ["--workers", WORKERS])
        try:
            wait_healthy(port, process)
            started = time.monotonic()
            statuses = asyncio.run(_burst(port, 150, 150))
            elapsed = time.monotonic() - started
        finally:
            output = stop_serve(process)
    # The bucket holds 60 and refills one a second while the burst lasts.
    assert statuses[200] == len(up.requests_to("/v1/chat/completions")), output[-2000:]
    assert 60 <= statuses[200] <= 60 + int(elapsed) + 1, (statuses, elapsed)
    assert statuses[429] == 150 - statuses[200]


def test_max_concurrency_is_never_exceeded_across_workers(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        up.set_default(trickle(0.3))
        port = free_port()
        process = start_serve(_config(tmp_path, up.url, "max_concurrency: 4", 30), port, ["--workers", WORKERS])
        try:
            wait_healthy(port, process)
            statuses = asyncio.run(_burst(port, 24, 24))
        finally:
            output = stop_serve(process)
    assert statuses == Counter({200: 24}), output[-2000:]
    assert up.max_in_flight["/v1/chat/completions"] == 4
