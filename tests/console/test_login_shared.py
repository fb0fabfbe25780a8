"""Failed console logins and logouts count for the whole gateway, not for one worker or instance.

The login limits live in the shared store (the supervisor's holder here), so `--workers 2`
allows no more tries than one worker; a logout is an audit row every instance on the same
ledger reads through its change feed, so instances that share nothing else honour it too.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from llmmux.config.model import LoginLimits
from llmmux.console.gateway_throttle import GatewayLoginThrottle
from llmmux.console.session import COOKIE
from llmmux.shared.client import Shared
from llmmux.shared.holder import Holder, HolderStore
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

MASTER = "sk-console-shared-master-0123456789"
FRESH_CONNECTIONS = 8  # all on one worker by chance: 1 in 2**7


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def holder() -> AsyncIterator[list[Shared]]:
    """Two workers' handles on one real holder."""
    path = os.path.join(tempfile.mkdtemp(prefix="llmmux-holder-"), "state.sock")
    server = asyncio.ensure_future(Holder().serve(path))
    while not os.path.exists(path):
        await asyncio.sleep(0.01)
    handles = [Shared(HolderStore(path), instance=f"w{i}") for i in range(2)]
    for handle in handles:
        await handle.start()
    yield handles
    for handle in handles:
        await handle.aclose()
    server.cancel()


async def test_two_workers_share_one_count_of_an_addresses_failures(holder: list[Shared]) -> None:
    clock = Clock()
    limits = LoginLimits(free_tries=3, backoff_s=1.0, max_backoff_s=4.0, global_per_minute=1000)
    one, two = (GatewayLoginThrottle(limits, shared, clock) for shared in holder)
    assert [await one.failed("a"), await two.failed("a"), await one.failed("a")] == [0.0, 0.0, 0.0]
    assert await two.failed("a") == 1.0  # the fourth failure, whichever worker saw it
    assert await one.wait("a") == 1.0 and await two.wait("a") == 1.0 and await one.wait("b") == 0.0
    clock.now += 1.0
    assert await two.wait("a") == 0.0
    # Guesses sent at once each count: the count is atomic in the store.
    assert sorted(await asyncio.gather(*(one.failed("a") for _ in range(3)))) == [2.0, 4.0, 4.0]
    await two.succeeded("a")  # a right key on either worker clears the record
    assert await one.failed("a") == 0.0


async def test_failures_from_everyone_lock_the_form_on_every_worker(holder: list[Shared]) -> None:
    clock = Clock()
    limits = LoginLimits(free_tries=100, backoff_s=2.0, max_backoff_s=60.0, global_per_minute=10)
    one, two = (GatewayLoginThrottle(limits, shared, clock) for shared in holder)
    clock.now = 60.0 * int(clock.now // 60)  # the start of a minute: all of this falls in one
    for i in range(10):
        assert await (one if i % 2 else two).failed(f"10.0.0.{i}") == 0.0
    assert await one.failed("10.0.0.99") == 2.0
    assert await two.wait("192.0.2.1") == 2.0  # nobody may try, on any worker
    clock.now += 2.0
    assert await one.wait("192.0.2.1") == 0.0
    for i in range(11):
        await two.failed(f"10.0.1.{i}")
    assert await one.wait("192.0.2.1") == 4.0  # a second flood within the minute: the lockout doubles


async def test_without_the_store_each_worker_falls_back_to_its_own_count(holder: list[Shared]) -> None:
    limits = LoginLimits(free_tries=1, backoff_s=1.0, max_backoff_s=4.0, global_per_minute=1000)
    throttle = GatewayLoginThrottle(limits, holder[0], Clock())
    holder[0].up = False  # as after a failed call: calls fail at once until a ping succeeds
    assert await throttle.failed("a") == 0.0 and await throttle.failed("a") == 1.0
    assert await throttle.wait("a") > 0  # the local throttle holds the count


def _config(folder: Path, upstream: FakeOpenAI, ledger: Path, **ui: object) -> Path:
    config = folder / f"llmmux-{free_port()}.yaml"
    settings = {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(ledger), "flush_interval": 0.1},
        "health_checks": {"interval": 3600},
        "providers": {"p": {"type": "openai_compatible", "base_url": upstream.url, "models": ["m"]}},
        "ui": ui,
    }
    config.write_text(yaml.safe_dump(settings))
    return config


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as up:
        yield up


def _try(root: str, key: str) -> httpx.Response:
    """One login on fresh connections, so the kernel picks a worker each time."""
    with httpx.Client(base_url=root, timeout=10) as client:
        form = client.get("/ui/login")
        token = re.search(r'name="csrf" value="([0-9a-f]{32})"', form.text)
        assert token is not None
    with httpx.Client(base_url=root, timeout=10, cookies=form.cookies) as client:
        return client.post("/ui/login", data={"key": key, "csrf": token.group(1)})


def test_two_workers_allow_the_tries_of_one(upstream: FakeOpenAI, tmp_path: Path) -> None:
    login = {"free_tries": 2, "backoff": "30s", "max_backoff": "30s", "global_per_minute": 1000}
    config = _config(tmp_path, upstream, tmp_path / "llmmux.db", login=login)
    port = free_port()
    process = start_serve(config, port, ["--workers", "2"])
    try:
        wait_healthy(port, process, limit=60)
        statuses = [_try(f"http://127.0.0.1:{port}", f"sk-guess-{i}").status_code for i in range(FRESH_CONNECTIONS)]
        assert statuses == [401, 401] + [429] * (FRESH_CONNECTIONS - 2)
    finally:
        stop_serve(process)


def test_a_logout_ends_the_session_on_an_instance_that_shares_only_the_ledger(
    upstream: FakeOpenAI, tmp_path: Path
) -> None:
    ledger = tmp_path / "shared.db"
    ports = [free_port(), free_port()]
    processes = [start_serve(_config(tmp_path, upstream, ledger), port) for port in ports]
    try:
        for port, process in zip(ports, processes):
            wait_healthy(port, process, limit=60)
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        logged_in = _try(first, MASTER)
        assert logged_in.status_code == 303
        cookie = {COOKIE: logged_in.cookies[COOKIE]}
        assert httpx.get(f"{second}/admin/providers", cookies=cookie, timeout=10).status_code == 200
        with httpx.Client(base_url=first, timeout=10, cookies=cookie) as client:
            page = client.get("/ui/")
            csrf = re.search(r'name="csrf" value="([0-9a-f]{32})"', page.text)
            assert csrf is not None
            assert client.post("/ui/logout", data={"csrf": csrf.group(1)}).status_code == 303
        logged_out = time.monotonic()
        while httpx.get(f"{second}/admin/providers", cookies=cookie, timeout=10).status_code == 200:
            assert time.monotonic() - logged_out < 2.0, "the other instance still takes the session"
            time.sleep(0.05)
        assert httpx.get(f"{second}/ui/keys", cookies=cookie, timeout=10).status_code == 303
        # A restarted instance reads the logouts it missed.
        stop_serve(processes[1])
        processes[1] = start_serve(_config(tmp_path, upstream, ledger), ports[1])
        wait_healthy(ports[1], processes[1], limit=60)
        assert httpx.get(f"{second}/admin/providers", cookies=cookie, timeout=10).status_code == 401
        assert _try(second, MASTER).status_code == 303  # logging in again works
    finally:
        for process in processes:
            stop_serve(process)
