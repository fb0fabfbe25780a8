"""Three instances behind nginx on Redis and PostgreSQL: the registry, and what faults cost.

Chaos: Redis killed and restarted under 200-way load costs no client request, and limits
are exact again within seconds of its return; an instance killed with SIGKILL leaks no
concurrency lease and no ledger row is doubled.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from click.testing import CliRunner

from llmmux.cli import main
from support.cluster import Fleet, nginx_available
from support.gateway import free_port
from support.postgres import TempPostgres
from support.redis import TempRedis
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI
from upstreams.base import trickle

MASTER = "sk-master-0123456789abcdef"
CHAT = "/v1/chat/completions"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}

pytestmark = pytest.mark.skipif(not nginx_available(), reason="needs Debian's nginx (apt-get install nginx)")


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fleet_config(tmp_path: Path, redis_server: TempRedis, postgres: TempPostgres, up: FakeOpenAI) -> dict[str, Any]:
    redis_server.client().flushall()
    database = postgres.create_database("fleet_" + uuid.uuid4().hex[:10])
    return {
        "server": {"master_key": MASTER},
        "state": {"url": redis_server.url},
        "ledger": {"database_url": database, "flush_interval": 0.05},
        "providers": {
            "up": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]},
            "limited": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]},
        },
        "routing": {
            "exact_matches": {
                "chat": {"provider": "up", "model": "m"},
                "limited": {"provider": "limited", "model": "m"},
            }
        },
        "rate_limit_settings": {"queue_timeout_seconds": 30, "limits": {}},
    }


def write(tmp_path: Path, config: dict[str, Any], name: str = "llmmux.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config))
    return path


def instances(port: int) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{port}/admin/instances", headers={"authorization": f"Bearer {MASTER}"})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def wait_for(check: Any, limit: float = 10.0) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_instances_are_listed_drift_is_flagged_and_the_dead_are_dropped(
    tmp_path: Path, fleet_config: dict[str, Any]
) -> None:
    with Fleet(write(tmp_path, fleet_config)) as fleet:
        listed = instances(fleet.port)
        assert len(listed["data"]) == 3 and listed["drift"] is False
        assert {i["pid"] for i in listed["data"]} == {p.pid for p in fleet.processes}
        assert all(i["version"] and i["config_hash"] and "in_flight" in i for i in listed["data"])
        # A fourth instance deployed with another config joins the same Redis.
        other = {**fleet_config, "rate_limit_settings": {"queue_timeout_seconds": 5, "limits": {}}}
        port = free_port()
        odd = start_serve(write(tmp_path, other, "other.yaml"), port)
        try:
            wait_healthy(port, odd)
            drifted = wait_for(lambda: (found := instances(fleet.port))["drift"] and found)
            assert [i["pid"] for i in drifted["data"] if i["config_drift"]] == [odd.pid]
            shown = CliRunner().invoke(
                main, ["status", "--url", f"http://127.0.0.1:{fleet.port}"], env={"LLMMUX_MASTER_KEY": MASTER}
            )
            assert shown.exit_code == 3 and "config drift" in shown.output
            assert f"{odd.pid}" in shown.output
        finally:
            stop_serve(odd)
        fleet.kill(0)
        dead = fleet.processes[0].pid
        assert wait_for(lambda: dead not in {i["pid"] for i in instances(fleet.port)["data"]}, limit=10)
        assert len(instances(fleet.port)["data"]) == 2


async def _load(port: int, seconds: float, concurrency: int, model: str = "chat") -> tuple[Counter[int], list[str]]:
    """`concurrency` clients sending requests back to back for `seconds`."""
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:

        async def one_client() -> None:
            while time.monotonic() < deadline:
                try:
                    answer = await client.post(
                        CHAT, json={**BODY, "model": model}, headers={"authorization": f"Bearer {MASTER}"}
                    )
                    statuses[answer.status_code] += 1
                    if answer.status_code != 200:
                        errors.append(answer.text[:300])
                except httpx.HTTPError as exc:
                    statuses[0] += 1
                    errors.append(repr(exc))

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return statuses, errors


def test_redis_killed_and_restarted_under_load_costs_no_request(
    tmp_path: Path, fleet_config: dict[str, Any], redis_server: TempRedis
) -> None:
    fleet_config["rate_limit_settings"] = {
        "queue_timeout_seconds": 0.01,
        "limits": {"up": {"rpm": 1_000_000}, "limited": {"rpm": 60}},
    }
    with Fleet(write(tmp_path, fleet_config)) as fleet:

        def chaos() -> None:
            time.sleep(1.5)
            redis_server.kill()
            time.sleep(2.0)
            redis_server.start()

        thread = threading.Thread(target=chaos)
        thread.start()
        statuses, errors = asyncio.run(_load(fleet.port, 6.0, 200))
        thread.join()
        # Redis came back empty: an instance is listed again once it reconnected and sent its heartbeat.
        back = time.monotonic()
        assert wait_for(lambda: len(instances(fleet.port)["data"]) == 3, limit=5.0)
        reconnected = time.monotonic() - back
        started = time.monotonic()
        limited = asyncio.run(_burst(fleet.port, 150, "limited"))
        elapsed = time.monotonic() - started
    assert set(statuses) == {200} and statuses[200] > 200, (statuses, errors[:5])
    # One warning per instance when Redis went, one when it came back; none per request.
    assert fleet.output.count("is out of reach") == 3, fleet.output[-3000:]
    assert fleet.output.count("is back") == 3
    assert reconnected < 3.0
    assert 60 <= limited[200] <= 60 + int(elapsed) + 1, limited


async def _burst(port: int, count: int, model: str) -> Counter[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post(CHAT, json={**BODY, "model": model}, headers={"authorization": f"Bearer {MASTER}"})
                for _ in range(count)
            )
        )
    return Counter(a.status_code for a in answers)


def test_a_killed_instance_leaks_no_lease_and_no_ledger_row_is_doubled(
    tmp_path: Path, fleet_config: dict[str, Any], up: FakeOpenAI
) -> None:
    up.set_default(trickle(0.4))
    fleet_config["rate_limit_settings"]["limits"] = {"up": {"max_concurrency": 4}}
    database = fleet_config["ledger"]["database_url"]
    with Fleet(write(tmp_path, fleet_config)) as fleet:
        killer = threading.Timer(1.0, fleet.kill, args=(0,))
        killer.start()
        statuses, _ = asyncio.run(_load(fleet.port, 3.0, 12))
        killer.join()
        assert up.max_in_flight[CHAT] <= 4
        # The dead instance's leases run out (LEASE_TTL_S); then the survivors get all 4 slots.
        time.sleep(5.5)
        up.max_in_flight.clear()
        assert asyncio.run(_burst(fleet.port, 8, "chat")) == Counter({200: 8})
        assert up.max_in_flight[CHAT] == 4
        time.sleep(0.5)  # the survivors' last batch reaches the ledger
    rows = asyncio.run(_ledger_rows(database))
    assert len(rows) == len(set(rows))  # no request recorded twice
    answered = statuses[200] + 8
    # The killed instance's last unflushed batch (<= its in-flight plus one flush) is all that may be missing.
    assert answered - 8 <= sum(1 for _ in rows) <= sum(statuses.values()) + 8, (statuses, len(rows))
    assert statuses[200] > 0


async def _ledger_rows(url: str) -> list[str]:
    connection = await asyncpg.connect(url)
    try:
        return [r["request_id"] for r in await connection.fetch("SELECT request_id FROM requests")]
    finally:
        await connection.close()


def test_keys_revoked_from_the_cli_are_refused_everywhere_within_a_second(
    tmp_path: Path, fleet_config: dict[str, Any]
) -> None:
    path = write(tmp_path, fleet_config)
    with Fleet(path) as fleet:
        made = httpx.post(
            f"http://127.0.0.1:{fleet.port}/admin/keys",
            json={"name": "cli"},
            headers={"authorization": f"Bearer {MASTER}"},
        ).json()
        secret = made["key"]
        assert asyncio.run(_burst_key(fleet.port, 12, secret)) == Counter({200: 12})
        revoked = CliRunner().invoke(main, ["keys", "revoke", "--config", str(path), made["id"]])
        assert revoked.exit_code == 0 and "refuse it at once" in revoked.output, revoked.output
        time.sleep(1.0)
        assert asyncio.run(_burst_key(fleet.port, 12, secret)) == Counter({401: 12})


async def _burst_key(port: int, count: int, secret: str) -> Counter[int]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post(CHAT, json=BODY, headers={"authorization": f"Bearer {secret}"}) for _ in range(count))
        )
    return Counter(a.status_code for a in answers)


def test_reload_all_reloads_every_instance(tmp_path: Path, fleet_config: dict[str, Any]) -> None:
    path = write(tmp_path, fleet_config)
    with Fleet(path, args=("--no-reload",)) as fleet:
        fleet_config["routing"]["exact_matches"]["chat-new"] = {"provider": "up", "model": "m"}
        write(tmp_path, fleet_config)
        url = f"http://127.0.0.1:{fleet.port}"
        done = CliRunner().invoke(main, ["reload", "--all", "--url", url], env={"LLMMUX_MASTER_KEY": MASTER})
        assert done.exit_code == 0 and "every instance" in done.output, done.output
        time.sleep(1.0)
        for port in fleet.ports:  # each instance directly, not through the balancer
            answer = httpx.post(
                f"http://127.0.0.1:{port}{CHAT}",
                json={**BODY, "model": "chat-new"},
                headers={"authorization": f"Bearer {MASTER}"},
            )
            assert answer.status_code == 200, answer.text
