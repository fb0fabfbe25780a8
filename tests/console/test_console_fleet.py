"""Two `llmmux serve` instances sharing state on Redis: one live tail and one set of sessions for both."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support import free_port
from support.redis import TempRedis
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

from .conftest import MASTER

AUTH = {"authorization": f"Bearer {MASTER}"}
WITHIN_S = 2.0


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("console-fleet")
    with TempRedis() as redis, FakeOpenAI() as up:
        processes = []
        roots = []
        try:
            for name in ("a", "b"):
                config = folder / f"{name}.yaml"
                config.write_text(yaml.safe_dump(_config(folder / f"{name}.db", up.url, redis.url)))
                port = free_port()
                processes.append(start_serve(config, port))
                roots.append(f"http://127.0.0.1:{port}")
            for process, root in zip(processes, roots, strict=True):
                wait_healthy(int(root.rsplit(":", 1)[1]), process, limit=60)
            yield roots[0], roots[1]
        finally:
            for process in processes:
                stop_serve(process)


def _config(ledger: Path, upstream: str, redis: str) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(ledger)},
        "state": {"url": redis},
        "health_checks": {"enabled": False},
        "providers": {"p": {"type": "openai_compatible", "base_url": upstream, "models": ["m"]}},
        "routing": {"exact_matches": {"chat": {"provider": "p", "model": "m"}}},
    }


def test_a_tail_on_one_instance_shows_what_another_served(fleet: tuple[str, str]) -> None:
    watched, other = fleet
    events: list[dict[str, Any]] = []
    opened = threading.Event()
    stop = threading.Event()

    def watch() -> None:
        with httpx.stream("GET", f"{watched}/admin/requests/stream", headers=AUTH, timeout=30) as stream:
            for line in stream.iter_lines():
                opened.set()
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                if stop.is_set():
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert opened.wait(10)
    # The other instance starts forwarding once it hears the watcher's announcement: wait for it.
    deadline = time.monotonic() + 10
    request_ids: list[str] = []
    while time.monotonic() < deadline:
        reply = httpx.post(
            f"{other}/v1/chat/completions",
            headers=AUTH,
            json={"model": "chat", "messages": [{"role": "user", "content": "over there"}]},
            timeout=10,
        )
        assert reply.status_code == 200
        request_ids.append(reply.headers["x-request-id"])
        sent = time.monotonic()
        while time.monotonic() - sent < WITHIN_S and request_ids[-1] not in {e["request_id"] for e in events}:
            time.sleep(0.02)
        if request_ids[-1] in {e["request_id"] for e in events}:
            break
    stop.set()
    seen = {e["request_id"]: e for e in events}
    assert request_ids[-1] in seen, "no request served by the other instance reached the tail"
    assert seen[request_ids[-1]]["instance"] and seen[request_ids[-1]]["provider"] == "p"


def _log_in(root: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=root, timeout=10)
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', client.get("/ui/login").text)
    assert token is not None
    assert client.post("/ui/login", data={"key": MASTER, "csrf": token.group(1)}).status_code == 303
    csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', client.get("/ui/keys").text)
    assert csrf is not None
    return client, csrf.group(1)


def test_a_logout_on_one_instance_ends_the_session_on_the_other(fleet: tuple[str, str]) -> None:
    first, second = fleet
    client, csrf = _log_in(first)
    cookies = dict(client.cookies)
    assert httpx.get(f"{second}/admin/providers", cookies=cookies, timeout=10).status_code == 200
    assert client.post("/ui/logout", data={"csrf": csrf}).status_code == 303
    client.close()
    assert httpx.get(f"{second}/admin/providers", cookies=cookies, timeout=10).status_code == 401
    page = httpx.get(f"{second}/ui/keys", cookies=cookies, timeout=10)
    assert page.status_code == 303 and page.headers["location"] == "/ui/login"
    assert httpx.get(f"{first}/admin/providers", cookies=cookies, timeout=10).status_code == 401
