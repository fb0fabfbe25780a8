"""Several processes act as one gateway: `--workers 3` on one box (the holder process), and
three instances behind nginx on Redis and PostgreSQL. Limits, keys, budgets and health hold
for all of them together, never once per process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cluster import Fleet, OneBox, nginx_available
from support.postgres import TempPostgres
from support.redis import TempRedis
from upstreams import FakeOpenAI
from upstreams.base import hang, status, trickle

MASTER = "sk-master-0123456789abcdef"
CHAT = "/v1/chat/completions"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}]}
# 2 prompt tokens * $1000/M + 3 completion tokens * $2000/M = $0.008 a request.
PRICES = {"input": 1000, "output": 2000}
COST = 0.008
COOLDOWN = 6.0

Cluster = OneBox | Fleet
MakeCluster = Callable[[dict[str, Any]], AbstractContextManager[Cluster]]


@pytest.fixture(params=["workers", "fleet"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> MakeCluster:
    """Makes the topology from a config dict (state and ledger filled in per topology)."""

    def make(config: dict[str, Any]) -> AbstractContextManager[Cluster]:
        path = tmp_path / "llmmux.yaml"
        if request.param == "workers":
            ledger = {"path": str(tmp_path / "llmmux.db"), "flush_interval": 0.05, **config.get("ledger", {})}
            config = {**config, "ledger": ledger}
            path.write_text(json.dumps(config))
            return OneBox(path, workers=3)
        if not nginx_available():
            pytest.fail("nginx is not installed (apt-get install nginx)")
        redis: TempRedis = request.getfixturevalue("valkey_server" if request.param == "valkey" else "redis_server")
        redis.client().flushall()
        postgres: TempPostgres = request.getfixturevalue("postgres")
        database = postgres.create_database("fleet_" + uuid.uuid4().hex[:10])
        config = {
            **config,
            "state": {"url": redis.url},
            "ledger": {"database_url": database, "flush_interval": 0.05, **config.get("ledger", {})},
        }
        path.write_text(json.dumps(config))
        return Fleet(path, instances=3)

    return make


def gateway(url: str, limits: dict[str, Any] | None = None, queue: float = 0.01, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "providers": {
            "up": {"type": "openai_compatible", "base_url": url, "models": [{"name": "m", "pricing": PRICES}]}
        },
        "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m"}}},
        "rate_limit_settings": {"queue_timeout_seconds": queue, "limits": {"up": limits} if limits else {}},
        **extra,
    }


async def burst(port: int, count: int, key: str = "x", body: dict[str, Any] = BODY) -> Counter[int]:
    """`count` requests at once, each on its own connection, so every worker and instance gets some."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    headers = {"authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        answers = await asyncio.gather(*(client.post(CHAT, json=body, headers=headers) for _ in range(count)))
    return Counter(a.status_code for a in answers)


def one(port: int, key: str, body: dict[str, Any] = BODY) -> int:
    """One request on a fresh connection (the balancer picks a worker or instance)."""
    headers = {"authorization": f"Bearer {key}", "connection": "close"}
    return httpx.post(f"http://127.0.0.1:{port}{CHAT}", json=body, headers=headers, timeout=30).status_code


def admin(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.request(
        method, f"http://127.0.0.1:{port}/admin/{path}", json=body, headers={"authorization": f"Bearer {MASTER}"}
    )
    assert response.status_code < 300, response.text
    return response.json()


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def test_a_provider_rpm_admits_its_limit_across_all_processes(cluster: MakeCluster, up: FakeOpenAI) -> None:
    with cluster(gateway(up.url, {"rpm": 60})) as gw:
        started = time.monotonic()
        statuses = asyncio.run(burst(gw.port, 150, MASTER))
        elapsed = time.monotonic() - started
    # The bucket holds 60 and refills one a second while the burst lasts.
    assert statuses[200] == len(up.requests_to(CHAT)), gw.output[-2000:]
    assert 60 <= statuses[200] <= 60 + int(elapsed) + 1, (statuses, elapsed)
    assert statuses[429] == 150 - statuses[200]


def test_max_concurrency_is_never_exceeded_across_processes(cluster: MakeCluster, up: FakeOpenAI) -> None:
    up.set_default(trickle(0.3))
    with cluster(gateway(up.url, {"max_concurrency": 4}, queue=30)) as gw:
        statuses = asyncio.run(burst(gw.port, 24, MASTER))
    assert statuses == Counter({200: 24}), gw.output[-2000:]
    assert up.max_in_flight[CHAT] == 4


def test_a_key_rpm_admits_its_limit_across_all_processes(cluster: MakeCluster, up: FakeOpenAI) -> None:
    with cluster(gateway(up.url)) as gw:
        key = admin(gw.port, "POST", "keys", {"name": "team", "rpm": 60})["key"]
        started = time.monotonic()
        statuses = asyncio.run(burst(gw.port, 150, key))
        elapsed = time.monotonic() - started
    assert 60 <= statuses[200] <= 60 + int(elapsed) + 1, (statuses, elapsed, gw.output[-2000:])
    assert statuses[429] == 150 - statuses[200]


def test_a_revoked_key_is_refused_everywhere_within_a_second(cluster: MakeCluster, up: FakeOpenAI) -> None:
    with cluster(gateway(up.url)) as gw:
        made = admin(gw.port, "POST", "keys", {"name": "leaver"})
        # Every process has seen (and cached) the key.
        assert asyncio.run(burst(gw.port, 30, made["key"])) == Counter({200: 30})
        admin(gw.port, "DELETE", f"keys/{made['id']}")
        time.sleep(1.0)
        statuses = asyncio.run(burst(gw.port, 30, made["key"]))
    assert statuses == Counter({401: 30}), gw.output[-2000:]


def test_a_key_revoked_by_the_cli_on_the_ledger_is_refused_everywhere_within_a_second(
    cluster: MakeCluster, up: FakeOpenAI
) -> None:
    # No periodic reload comes to the rescue: only noticing the change can refuse the key in time.
    with cluster(gateway(up.url, ledger={"refresh_interval": 3600})) as gw:
        made = admin(gw.port, "POST", "keys", {"name": "leaver"})
        assert asyncio.run(burst(gw.port, 30, made["key"])) == Counter({200: 30})
        ledger = json.loads(gw.config.read_text())["ledger"]
        # --db, not the config: nothing is published to the running processes, they must notice.
        db = ledger.get("path") or ledger["database_url"]
        command = [sys.executable, "-m", "llmmux", "keys", "revoke", "--db", db, made["id"]]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        time.sleep(1.0)
        statuses = asyncio.run(burst(gw.port, 30, made["key"]))
    assert statuses == Counter({401: 30}), gw.output[-2000:]


def test_a_budget_stops_the_key_on_every_process(cluster: MakeCluster, up: FakeOpenAI) -> None:
    with cluster(gateway(up.url)) as gw:
        key = admin(gw.port, "POST", "keys", {"name": "capped", "budget": COST * 10 - COST / 2})["key"]
        statuses = Counter(one(gw.port, key) for _ in range(25))
    # One request after another (nothing in flight): the tenth crosses the budget, the rest are refused.
    assert statuses == Counter({200: 10, 429: 15}), gw.output[-2000:]


def test_a_failing_backend_is_ejected_for_all_after_one_threshold(cluster: MakeCluster, up: FakeOpenAI) -> None:
    with FakeOpenAI() as spare:
        up.set_default(status(500))
        config = gateway(
            up.url,
            health_checks={"enabled": False, "failure_threshold": 3, "min_cooldown_seconds": COOLDOWN},
        )
        config["providers"]["spare"] = {"type": "openai_compatible", "base_url": spare.url, "models": ["m"]}
        config["routing"]["exact_matches"]["chat"]["fallback"] = ["spare/m"]
        with cluster(config) as gw:
            started = time.monotonic()
            statuses = Counter(one(gw.port, MASTER) for _ in range(20))
            failed = len(up.requests_to(CHAT))
            assert time.monotonic() - started < COOLDOWN  # else a half-open trial would have run meanwhile
            up.set_default(None)  # it recovers
            time.sleep(COOLDOWN + 0.2 - (time.monotonic() - started))  # the next request is the one trial
            while len(up.requests_to(CHAT)) == failed:
                assert one(gw.port, MASTER) == 200
            back = len(up.requests_to(CHAT))
            for _ in range(12):
                assert one(gw.port, MASTER) == 200
            returned = len(up.requests_to(CHAT)) - back
    assert statuses == Counter({200: 20}), gw.output[-2000:]
    transitions = [line for line in gw.output.splitlines() if "provider up:" in line]
    assert failed == 3, "\n".join(t[40:220] for t in transitions)  # the threshold once, not once per worker or instance
    assert returned == 12  # after one successful trial, every process routes to it again


def test_concurrent_failures_on_every_process_count_towards_one_threshold(cluster: MakeCluster, up: FakeOpenAI) -> None:
    threshold, clients = 8, 4
    with FakeOpenAI() as spare:
        up.set_default(hang(0.3))  # each failure takes a while: several are always in flight together
        config = gateway(
            up.url,
            health_checks={"enabled": False, "failure_threshold": threshold, "min_cooldown_seconds": 30},
        )
        config["providers"]["spare"] = {"type": "openai_compatible", "base_url": spare.url, "models": ["m"]}
        config["routing"]["exact_matches"]["chat"]["fallback"] = ["spare/m"]
        with cluster(config) as gw:

            async def client() -> list[int]:
                headers = {"authorization": f"Bearer {MASTER}", "connection": "close"}
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=30) as http:
                    return [(await http.post(CHAT, json=BODY, headers=headers)).status_code for _ in range(8)]

            async def clients_in_parallel() -> list[list[int]]:
                return await asyncio.gather(*(client() for _ in range(clients)))

            statuses = Counter(code for codes in asyncio.run(clients_in_parallel()) for code in codes)
            failed = len(up.requests_to(CHAT))
    assert statuses == Counter({200: 8 * clients}), gw.output[-2000:]
    # One streak for all processes: the threshold, plus what was already on its way when it tripped.
    assert threshold <= failed <= threshold + clients, failed


def test_a_stored_response_is_found_by_every_process(cluster: MakeCluster, up: FakeOpenAI) -> None:
    with cluster(gateway(up.url)) as gw:
        base, auth = f"http://127.0.0.1:{gw.port}", {"authorization": f"Bearer {MASTER}", "connection": "close"}
        first = httpx.post(f"{base}/v1/responses", json={"model": "chat", "input": "one"}, headers=auth)
        assert first.status_code == 200, first.text
        rid = first.json()["id"]
        for turn in range(6):  # fresh connections: each may land on another worker or instance
            follow = {"model": "chat", "input": f"turn {turn}", "previous_response_id": rid}
            assert httpx.post(f"{base}/v1/responses", json=follow, headers=auth).status_code == 200
            assert httpx.get(f"{base}/v1/responses/{rid}", headers=auth).json()["id"] == rid
        sent = up.requests_to(CHAT)[-1].json["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "turn 5"]
        assert httpx.delete(f"{base}/v1/responses/{rid}", headers=auth).status_code == 200
        statuses = {httpx.get(f"{base}/v1/responses/{rid}", headers=auth).status_code for _ in range(6)}
    # Deleted everywhere: no process still serves its own cached copy.
    assert statuses == {404}


@pytest.mark.parametrize("cluster", ["valkey"], indirect=True)
def test_a_fleet_on_valkey_acts_as_one_gateway(cluster: MakeCluster, up: FakeOpenAI, valkey_server: TempRedis) -> None:
    """Valkey (valkey:// URL) in place of Redis: one fleet, started once, checks a representative
    subset of the tests above (a provider rpm, a budget, a revocation, ejection, the Responses store)."""
    with FakeOpenAI() as failing, FakeOpenAI() as limited:
        failing.set_default(status(500))
        config = gateway(up.url, health_checks={"enabled": False, "failure_threshold": 3, "min_cooldown_seconds": 30})
        providers, routes = config["providers"], config["routing"]["exact_matches"]
        providers["failing"] = {"type": "openai_compatible", "base_url": failing.url, "models": ["m"]}
        providers["limited"] = {"type": "openai_compatible", "base_url": limited.url, "models": ["m"]}
        routes["flaky"] = {"provider": "failing", "model": "m", "fallback": ["up/m"]}
        routes["limited"] = {"provider": "limited", "model": "m"}
        config["rate_limit_settings"]["limits"] = {"limited": {"rpm": 60}}
        with cluster(config) as gw:
            capped = admin(gw.port, "POST", "keys", {"name": "capped", "budget": COST * 5 - COST / 2})["key"]
            budget = Counter(one(gw.port, capped) for _ in range(8))
            leaver = admin(gw.port, "POST", "keys", {"name": "leaver"})
            assert asyncio.run(burst(gw.port, 12, leaver["key"])) == Counter({200: 12})
            admin(gw.port, "DELETE", f"keys/{leaver['id']}")
            time.sleep(1.0)
            revoked = asyncio.run(burst(gw.port, 12, leaver["key"]))
            flaky = Counter(one(gw.port, MASTER, {**BODY, "model": "flaky"}) for _ in range(12))
            base, auth = f"http://127.0.0.1:{gw.port}", {"authorization": f"Bearer {MASTER}", "connection": "close"}
            rid = httpx.post(f"{base}/v1/responses", json={"model": "chat", "input": "one"}, headers=auth).json()["id"]
            found = {httpx.get(f"{base}/v1/responses/{rid}", headers=auth).status_code for _ in range(6)}
            started = time.monotonic()
            limits = asyncio.run(burst(gw.port, 100, MASTER, {**BODY, "model": "limited"}))
            elapsed = time.monotonic() - started
            # The instances registered in valkey-server: the state was shared there.
            assert len(valkey_server.client().keys("llmmux:i:?*")) == 3
    assert budget == Counter({200: 5, 429: 3}), gw.output[-2000:]
    assert revoked == Counter({401: 12})
    assert flaky == Counter({200: 12}) and len(failing.requests_to(CHAT)) == 3  # the threshold once
    assert found == {200}
    assert 60 <= limits[200] <= 60 + int(elapsed) + 1 and limits[429] == 100 - limits[200], (limits, elapsed)
