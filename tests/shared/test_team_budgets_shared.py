"""Team and end-user budgets, end-user rpm and budget alerts hold across instances on one Redis.

Two `llmmux serve` instances share a Redis and a ledger (one SQLite file, or PostgreSQL);
requests alternate between them, so neither instance's own count could stop them in time.
Each instance's ledger refresh is set far apart: only the shared state can do it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from support.cluster import OneBox
from support.gateway import free_port
from support.postgres import TempPostgres
from support.redis import TempRedis
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"
CHAT = "/v1/chat/completions"
# 2 prompt tokens * $1000/M + 3 completion tokens * $2000/M = $0.008 a request.
PRICES = {"input": 1000, "output": 2000}
COST = 0.008


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    # Far apart: an instance learns the other's spend only through the shared store.
    settings: dict[str, Any] = {"flush_interval": 0.05, "refresh_interval": 600}
    if request.param == "sqlite":
        return {"path": str(tmp_path / "llmmux.db"), **settings}
    postgres: TempPostgres = request.getfixturevalue("postgres")
    return {"database_url": postgres.create_database("teams_" + uuid.uuid4().hex[:10]), **settings}


@contextmanager
def two_instances(
    tmp_path: Path, redis: TempRedis, up: FakeOpenAI, ledger: dict[str, Any], **extra: Any
) -> Iterator[tuple[list[int], list[str]]]:
    """Two instances on one Redis and one ledger: their ports, and (after exit) their output."""
    redis.client().flushall()
    config = {
        "server": {"master_key": MASTER},
        "state": {"url": redis.url},
        "ledger": ledger,
        "providers": {
            "up": {"type": "openai_compatible", "base_url": up.url, "models": [{"name": "m", "pricing": PRICES}]}
        },
        "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m"}}},
        **extra,
    }
    path = tmp_path / "llmmux.yaml"
    path.write_text(json.dumps(config))
    ports = [free_port(), free_port()]
    outputs: list[str] = []
    with ExitStack() as stack:
        for port in ports:  # one after the other: the first migrates the ledger
            process = start_serve(path, port)
            stack.callback(lambda p=process: outputs.append(stop_serve(p)))
            wait_healthy(port, process, limit=60)
        yield ports, outputs


def admin(port: int, method: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.request(
        method, f"http://127.0.0.1:{port}/admin/{path}", json=body, headers={"authorization": f"Bearer {MASTER}"}
    )
    assert response.status_code < 300, response.text
    return response.json()


def chat(port: int, key: str, connection: str = "keep-alive", **body: Any) -> httpx.Response:
    """One request; `connection="close"` lets the kernel hand each to any worker sharing the port."""
    payload = {"model": "chat", "messages": [{"role": "user", "content": "hello there"}], **body}
    headers = {"authorization": f"Bearer {key}", "connection": connection}
    return httpx.post(f"http://127.0.0.1:{port}{CHAT}", json=payload, headers=headers, timeout=30)


def test_a_team_budget_stops_both_keys_on_both_instances_and_alerts_once(
    tmp_path: Path, redis_server: TempRedis, ledger: dict[str, Any], webhook: str
) -> None:
    alerts = {"alerts": {"webhook_url": webhook}}
    with FakeOpenAI() as up, two_instances(tmp_path, redis_server, up, ledger, **alerts) as (ports, outputs):
        a, b = ports
        budget = COST * 6 - COST / 2  # the sixth request crosses it
        admin(a, "POST", "teams", {"name": "search", "budget": budget, "alert_at": 0.5})
        one = admin(a, "POST", "keys", {"name": "one", "team": "search"})["key"]
        two = admin(b, "POST", "keys", {"name": "two", "team": "search", "budget": 100})["key"]
        statuses = []
        for turn in range(10):  # key one on instance a, key two on instance b, in turn
            statuses.append(chat(a, one).status_code if turn % 2 == 0 else chat(b, two).status_code)
        refused = [chat(port, key) for port, key in ((a, two), (b, one))]
        deadline = time.monotonic() + 10
        while len(Hook.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a second alert from the other instance would have arrived by now
    assert statuses == [200] * 6 + [429] * 4, f"{statuses} {chr(10).join(outputs)[-3000:]}"
    for answer in refused:
        assert answer.status_code == 429
        message = answer.json()["error"]["message"]
        assert "Budget exceeded for team 'search'" in message and "it resets at" in message
    assert len(up.requests_to(CHAT)) == 6
    assert sorted((e["level"], e["kind"], e["name"], e["fraction"]) for e in Hook.received) == [
        ("exhausted", "team", "search", 1.0),
        ("threshold", "team", "search", 0.5),
    ]
    logged = "\n".join(outputs)
    assert logged.count("budget alert:") == 2


def test_end_user_rpm_and_budget_hold_across_instances(
    tmp_path: Path, redis_server: TempRedis, postgres: TempPostgres
) -> None:
    ledger = {"database_url": postgres.create_database("eu_" + uuid.uuid4().hex[:10]), "refresh_interval": 600}
    with FakeOpenAI() as up, two_instances(tmp_path, redis_server, up, ledger) as (ports, outputs):
        a, b = ports
        limits = {"rpm": 3, "budget": COST * 2 - COST / 2}
        key = admin(a, "POST", "keys", {"name": "app", "end_user_limits": {"rpm": 3}})["key"]
        rpm = [chat(ports[i % 2], key, user="alice").status_code for i in range(5)]
        other = chat(b, key, user="bob").status_code
        admin(a, "PATCH", "keys/app", {"end_user_limits": limits})
        time.sleep(1.0)  # the change reaches instance b over the shared channel
        spent = [chat(ports[i % 2], key, user="carol").status_code for i in range(3)]
        dave = chat(a, key, user="dave")
    assert rpm == [200, 200, 200, 429, 429], "\n".join(outputs)[-3000:]
    assert other == 200
    assert spent == [200, 200, 429]
    assert dave.status_code == 200


def test_a_team_budget_holds_across_workers_on_one_box(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "ledger": {"path": str(tmp_path / "llmmux.db"), "flush_interval": 0.05, "refresh_interval": 600},
            "providers": {
                "up": {"type": "openai_compatible", "base_url": up.url, "models": [{"name": "m", "pricing": PRICES}]}
            },
            "routing": {"exact_matches": {"chat": {"provider": "up", "model": "m"}}},
        }
        path = tmp_path / "llmmux.yaml"
        path.write_text(json.dumps(config))
        with OneBox(path, workers=3) as box:
            admin(box.port, "POST", "teams", {"name": "search", "budget": COST * 6 - COST / 2})
            keys = [admin(box.port, "POST", "keys", {"name": n, "team": "search"})["key"] for n in ("one", "two")]
            statuses = [chat(box.port, keys[turn % 2], connection="close").status_code for turn in range(12)]
    assert statuses == [200] * 6 + [429] * 6, f"{statuses} {box.output[-3000:]}"
