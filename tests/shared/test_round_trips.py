"""What a limited request costs in store round trips, counted by the Redis server itself.

A key with rpm, tpm and a budget, on a provider with rpm, tpm and max_concurrency, all far
above the load: in steady state the instance admits from its slices, so the store sees a
few leases and give-backs a second, not a script call or two per request. Limits too small
to lease: the key's and the provider's admissions share one script call.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import httpx

from llmmux.shared import Shared
from llmmux.shared.redis_store import RedisStore
from support.gateway import free_port
from support.redis import TempRedis
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}


def script_calls(redis: TempRedis) -> int:
    stats: dict[str, Any] = redis.client().info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


def count_calls(
    tmp_path: Path, redis: TempRedis, key: dict[str, Any], provider: dict[str, Any], warm: int, requests: int
) -> tuple[int, str]:
    """Script calls Redis ran while one instance served `requests` sequential requests of a key
    with `key`'s limits to a provider with `provider`'s (after `warm` requests)."""
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "state": {"url": redis.url},
            "ledger": {"path": str(tmp_path / "llmmux.db")},
            "providers": {
                "up": {
                    "type": "openai_compatible",
                    "base_url": up.url,
                    "models": [{"name": "m", "pricing": {"input": 1, "output": 2}}],
                }
            },
            "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m"}}},
            "rate_limit_settings": {"limits": {"up": provider}},
        }
        path = tmp_path / "llmmux.yaml"
        path.write_text(json.dumps(config))
        port = free_port()
        process = start_serve(path, port)
        try:
            wait_healthy(port, process)
            base = f"http://127.0.0.1:{port}"
            made = httpx.post(
                f"{base}/admin/keys", json={"name": "k", **key}, headers={"authorization": f"Bearer {MASTER}"}
            )
            assert made.status_code < 300, made.text
            with httpx.Client(base_url=base, headers={"authorization": f"Bearer {made.json()['key']}"}) as client:
                for _ in range(warm):
                    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
                before = script_calls(redis)
                for _ in range(requests):
                    assert client.post("/v1/chat/completions", json=BODY).status_code == 200
                calls = script_calls(redis) - before
        finally:
            output = stop_serve(process)
    return calls, output[-2000:]


def test_a_key_with_tpm_and_a_budget_makes_no_round_trip_per_request(
    tmp_path: Path, redis_server: TempRedis, redis_url: str
) -> None:
    large = {"rpm": 10_000_000, "tpm": 1_000_000_000}
    key = {**large, "budget": 1000.0}
    calls, output = count_calls(tmp_path, redis_server, key, {**large, "max_concurrency": 100_000}, 50, 300)
    # Before slices for tpm and budgets: an acquire for the key and one for the provider, and a
    # settle of each, every request (over 4 a request). Now: leases, give-backs and heartbeats.
    assert calls < 30, (calls, output)


def test_the_key_and_the_provider_are_admitted_in_one_round_trip(
    tmp_path: Path, redis_server: TempRedis, redis_url: str
) -> None:
    # Limits too small for a slice (rpm 100, tpm 2,000 lease nothing): every request asks the store.
    provider = {"rpm": 100, "tpm": 2000, "max_concurrency": 4}
    calls, output = count_calls(tmp_path, redis_server, {"rpm": 100}, provider, 5, 40)
    # One script call admits the key and the provider (it asks for the provider's token, slot and
    # prompt estimate ahead, and the attempt finds them in its slice), one gives the slot back and
    # settles the tokens: 2 a request, where it was 3 (the key's acquire, the provider's, the
    # release); a few are heartbeats.
    assert calls <= 2 * 40 + 10, (calls, output)


def store_commands(redis: TempRedis) -> int:
    """Every command the server ran, those inside scripts included (INFO itself left out)."""
    stats: dict[str, Any] = redis.client().info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_client|setinfo"))


async def test_many_requests_in_flight_under_far_limits_ask_the_store_rarely(
    redis_server: TempRedis, redis_url: str
) -> None:
    # What `bench/hotpath.py --features` found: at c=64 on two instances each one's requests in
    # flight swing around 32, the slice's spare concurrency slots (4096 / (64 × 2) = 32), so a
    # slot was leased for one request and given back after it: a script call or two a request.
    handles = [Shared(RedisStore(redis_url), instance=f"i{n}", timeout_s=5.0) for n in range(2)]
    for handle in handles:
        await handle.start()
        handle.live_instances = 2
    chance = random.Random(7)
    provider = {"rpm": 6_000_000, "cap": 4096}
    key = {"rpm": 6_000_000, "tpm": 1_000_000_000}
    served = [0]

    async def client(requests: int) -> None:
        for _ in range(requests):
            handle = chance.choice(handles)  # a load balancer spreads them
            assert not (await handle.quotas.admit("key.k", **key)).wait
            assert not (await handle.quotas.admit("provider.p", **provider)).wait
            await asyncio.sleep(chance.random() * 0.004)
            handle.quotas.release("provider.p", cap=4096)
            handle.quotas.release("key.k", tpm=key["tpm"], tokens=40)
            served[0] += 1

    try:
        await asyncio.gather(*(client(20) for _ in range(64)))  # the slices grow to the load
        before, served[0] = store_commands(redis_server), 0
        await asyncio.gather(*(client(60) for _ in range(64)))
        commands = store_commands(redis_server) - before
    finally:
        for handle in handles:
            await handle.aclose()
    assert served[0] == 64 * 60
    # Leases, top-ups, give-backs and heartbeats: well under one command a request (today ~0.05).
    assert commands / served[0] < 0.2, commands
