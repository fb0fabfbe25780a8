"""Shared state on a TLS-only Redis that requires a password (rediss://, the password from the
environment), as a managed Redis or Valkey in the cloud is run."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from llmmux.shared.redis_store import RedisStore
from llmmux.shared.store import Ask, Budget
from support.gateway import free_port
from support.redis import TempRedis
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

PASSWORD = "s3cret-" + secrets.token_hex(8)
MASTER = "sk-master-0123456789abcdef"


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TempRedis]:
    with TempRedis(tls=True, password=PASSWORD) as server:
        yield server


async def test_the_store_works_over_tls_with_the_password(tls_redis: TempRedis) -> None:
    store = RedisStore(tls_redis.url, password=PASSWORD, prefix="tls:", timeout_s=2.0)
    await store.start()
    try:
        await store.ping()
        assert (await store.acquire("provider.p", Ask(rpm=2))).wait == 0.0
        assert (await store.charge_budgets([Budget("team.t:0", 1.0)], 0.5)).spends == [0.5]
    finally:
        await store.aclose()
    assert tls_redis.client().exists("tls:b:rpm.provider.p")


async def test_a_wrong_password_or_no_tls_is_refused(tls_redis: TempRedis) -> None:
    wrong = RedisStore(tls_redis.url, password="not-it", prefix="tls:", timeout_s=2.0)
    with pytest.raises(redis.AuthenticationError):
        await wrong.ping()
    await wrong.aclose()
    plain = RedisStore(f"redis://127.0.0.1:{tls_redis.port}/0", password=PASSWORD, timeout_s=1.0)
    with pytest.raises(redis.ConnectionError):
        await plain.ping()
    await plain.aclose()


def test_a_gateway_shares_its_state_over_tls_with_the_password_from_the_environment(
    tls_redis: TempRedis, tmp_path: Path
) -> None:
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "state": {"url": tls_redis.url, "password": "${LLMMUX_TEST_REDIS_PASSWORD}", "prefix": "gw:"},
            "ledger": {"enabled": False},
            "providers": {"up": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]}},
            "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m"}}},
            "rate_limit_settings": {"limits": {"up": {"rpm": 60, "max_concurrency": 4}}},
        }
        path = tmp_path / "llmmux.yaml"
        path.write_text(json.dumps(config))
        port = free_port()
        process = start_serve(path, port, env={"LLMMUX_TEST_REDIS_PASSWORD": PASSWORD})
        try:
            wait_healthy(port, process)
            auth = {"authorization": f"Bearer {MASTER}"}
            body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(3):
                answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=auth)
                assert answer.status_code == 200, answer.text
            instances = httpx.get(f"http://127.0.0.1:{port}/admin/instances", headers=auth).json()
        finally:
            output = stop_serve(process)
    assert [i["state"] for i in instances["data"]] == ["redis"], output
    client = tls_redis.client()
    # The provider's bucket lives in the TLS Redis, under the gateway's prefix: 3 taken of 60 (plus refill).
    assert 56 <= float(client.hget("gw:b:rpm.provider.up", "tokens") or 0) < 59
    assert "out of reach" not in output and PASSWORD not in output
