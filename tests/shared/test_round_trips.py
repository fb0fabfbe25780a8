"""What a limited request costs in store round trips, counted by the Redis server itself.

A key with rpm, tpm and a budget, on a provider with rpm, tpm and max_concurrency, all far
above the load: in steady state the instance admits from its slices, so the store sees a
few leases and give-backs a second, not a script call or two per request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from support.gateway import free_port
from support.redis import TempRedis
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"
LARGE = {"rpm": 10_000_000, "tpm": 1_000_000_000, "max_concurrency": 100_000}
REQUESTS = 300


def script_calls(redis: TempRedis) -> int:
    stats: dict[str, Any] = redis.client().info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def test_a_key_with_tpm_and_a_budget_makes_no_round_trip_per_request(
    tmp_path: Path, redis_server: TempRedis, redis_url: str
) -> None:
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "state": {"url": redis_url},
            "ledger": {"path": str(tmp_path / "llmmux.db")},
            "providers": {
                "up": {
                    "type": "openai_compatible",
                    "base_url": up.url,
                    "models": [{"name": "m", "pricing": {"input": 1, "output": 2}}],
                }
            },
            "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m"}}},
            "rate_limit_settings": {"limits": {"up": LARGE}},
        }
        path = tmp_path / "llmmux.yaml"
        path.write_text(json.dumps(config))
        port = free_port()
        process = start_serve(path, port)
        try:
            wait_healthy(port, process)
            base = f"http://127.0.0.1:{port}"
            master = {"authorization": f"Bearer {MASTER}"}
            made = httpx.post(
                f"{base}/admin/keys",
                json={"name": "big", "rpm": LARGE["rpm"], "tpm": LARGE["tpm"], "budget": 1000.0},
                headers=master,
            )
            assert made.status_code < 300, made.text
            body = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}
            with httpx.Client(base_url=base, headers={"authorization": f"Bearer {made.json()['key']}"}) as client:
                for _ in range(50):  # slices leased and sized: the steady state
                    assert client.post("/v1/chat/completions", json=body).status_code == 200
                before = script_calls(redis_server)
                for _ in range(REQUESTS):
                    assert client.post("/v1/chat/completions", json=body).status_code == 200
                calls = script_calls(redis_server) - before
        finally:
            output = stop_serve(process)
    # Before slices for tpm and budgets: an acquire for the key and one for the provider, and a
    # settle of each, every request (over 4 a request). Now: leases, give-backs and heartbeats.
    assert calls < REQUESTS / 10, (calls, output[-2000:])
