"""The cache's shared stores: SQLite survives a restart, Redis is shared by instances and fails soft."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from cache.test_exact_e2e import MASTER, ask, config, post, settle
from support import Gateway
from support.redis_server import REDIS_SERVER, RedisServer
from upstreams import FakeOpenAI

pytestmark = pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server is not installed")


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def with_store(up: FakeOpenAI, ledger: Path, store: dict[str, Any]) -> dict[str, Any]:
    return {**config(up, ledger), "cache": store}


def test_sqlite_entries_survive_a_restart(up: FakeOpenAI, tmp_path: Path) -> None:
    cfg = with_store(up, tmp_path / "ledger.db", {"store": "sqlite", "path": str(tmp_path / "cache.db")})
    with Gateway(cfg) as gw:
        assert post(gw, ask("persist")).headers["x-llmmux-cache"] == "miss"
        settle(gw)
    with Gateway(cfg) as again, openai.OpenAI(base_url=again.url, api_key=MASTER, max_retries=0) as sdk:
        hit = sdk.chat.completions.with_raw_response.create(model="chat", messages=ask("persist")["messages"])
        streamed = list(sdk.chat.completions.create(model="chat", messages=ask("persist")["messages"], stream=True))
        stats = httpx.get(again.root_url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert hit.headers["x-llmmux-cache"] == "hit" and hit.parse().choices[0].message.content == "echo: persist"
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "echo: persist"
    assert stats["store"] == "sqlite" and stats["entries"] == 1
    assert len(up.requests) == 1


def test_two_instances_share_one_redis(up: FakeOpenAI, tmp_path: Path) -> None:
    with RedisServer(tmp_path) as redis:
        cfg = with_store(up, tmp_path / "ledger.db", {"store": "redis", "url": redis.url})
        with Gateway(cfg) as one, Gateway(cfg) as two:
            assert post(one, ask("shared")).headers["x-llmmux-cache"] == "miss"
            settle(one)
            assert post(two, ask("shared")).headers["x-llmmux-cache"] == "hit"
            with httpx.stream(
                "POST",
                two.url + "/chat/completions",
                json=ask("streamed", stream=True),
                headers={"authorization": f"Bearer {MASTER}"},
            ) as first:
                first.read()
            settle(two)
            assert post(one, ask("streamed")).json()["choices"][0]["message"]["content"] == "echo: streamed"
            assert len(up.requests) == 2
            stats = httpx.get(one.root_url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"}).json()
            assert stats["store"] == "redis" and stats["entries"] == 2
            cleared = httpx.delete(
                two.root_url + "/admin/cache?model=chat", headers={"authorization": f"Bearer {MASTER}"}
            )
            assert cleared.json()["removed"] == 2
            assert post(one, ask("shared")).headers["x-llmmux-cache"] == "miss"


def test_redis_down_means_misses_never_errors(up: FakeOpenAI, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path).start()
    try:
        cfg = with_store(up, tmp_path / "ledger.db", {"store": "redis", "url": redis.url})
        with Gateway(cfg) as gw:
            post(gw, ask("before"))
            settle(gw)
            assert post(gw, ask("before")).headers["x-llmmux-cache"] == "hit"
            redis.stop()
            started = time.monotonic()
            for _ in range(3):
                answer = post(gw, ask("before"))
                assert answer.status_code == 200 and answer.headers["x-llmmux-cache"] == "miss"
                assert answer.json()["choices"][0]["message"]["content"] == "echo: before"
            with httpx.stream(
                "POST",
                gw.url + "/chat/completions",
                json=ask("during", stream=True),
                headers={"authorization": f"Bearer {MASTER}"},
            ) as streamed:
                assert streamed.status_code == 200 and b"[DONE]" in streamed.read()
            settle(gw)
            assert time.monotonic() - started < 5  # a dead Redis costs no timeouts per request
            stats = httpx.get(gw.root_url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"}).json()
            assert stats["available"] is False and stats["store_errors"] >= 1
    finally:
        redis.stop()
    assert len(up.requests) == 5
