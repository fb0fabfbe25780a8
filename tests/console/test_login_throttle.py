"""The console's login rate limit: per address and for everyone, doubling lockouts, 429 with Retry-After."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from llmmux.config.loader import config_from_dict
from llmmux.config.model import LoginLimits
from llmmux.console.throttle import LoginThrottle
from support import Gateway
from upstreams import FakeOpenAI

MASTER = "sk-console-throttle-master-012345"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_gets_its_free_tries_then_doubling_lockouts() -> None:
    clock = Clock()
    throttle = LoginThrottle(LoginLimits(free_tries=3, backoff_s=1.0, max_backoff_s=4.0), clock)
    assert [throttle.failed("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.failed("a") == 1.0
    assert throttle.wait("a") == 1.0 and throttle.wait("b") == 0.0  # another address is not held up
    clock.now += 1.0
    assert throttle.wait("a") == 0.0
    assert throttle.failed("a") == 2.0
    clock.now += 2.0
    assert throttle.failed("a") == 4.0
    clock.now += 4.0
    assert throttle.failed("a") == 4.0  # capped at max_backoff
    clock.now += 4.0
    throttle.succeeded("a")  # the right key clears the record: the next mistake is free again
    assert throttle.failed("a") == 0.0


def test_failures_from_everyone_together_lock_the_form_for_all() -> None:
    clock = Clock()
    throttle = LoginThrottle(
        LoginLimits(free_tries=100, backoff_s=2.0, max_backoff_s=60.0, global_per_minute=10), clock
    )
    for i in range(10):
        assert throttle.failed(f"10.0.0.{i}") == 0.0  # one try each: no address is over its own limit
        clock.now += 1
    assert throttle.failed("10.0.0.99") == 2.0
    assert throttle.wait("192.0.2.1") == 2.0  # nobody may try, not even a fresh address
    clock.now += 2.0
    assert throttle.wait("192.0.2.1") == 0.0
    for i in range(11):
        throttle.failed(f"10.0.1.{i}")
    assert throttle.wait("192.0.2.1") == 4.0  # a second flood within the minute: the lockout doubles
    clock.now += 4.0 + 61
    for i in range(11):
        throttle.failed(f"10.0.2.{i}")
    assert throttle.wait("192.0.2.1") == 2.0  # after a quiet minute it starts over


def test_the_login_limits_are_read_from_the_config_and_bad_ones_named() -> None:
    config, problems = config_from_dict(
        {"ui": {"login": {"free_tries": 2, "backoff": "3s", "max_backoff": "1m", "global_per_minute": 7}}}
    )
    assert not problems.errors
    assert config.ui.login == LoginLimits(free_tries=2, backoff_s=3.0, max_backoff_s=60.0, global_per_minute=7)
    _, bad = config_from_dict({"ui": {"login": {"free_tries": 0, "backoff": "-1s", "max_backoff": "soon"}}})
    assert sorted(p.path for p in bad.errors) == ["ui.login.backoff", "ui.login.free_tries", "ui.login.max_backoff"]


def _try(client: httpx.Client, key: str) -> httpx.Response:
    form = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', form.text)
    assert token is not None
    return client.post("/ui/login", data={"key": key, "csrf": token.group(1)})


def test_a_guessing_client_gets_429_with_retry_after_then_logs_in_after_the_window(tmp_path: Any) -> None:
    login = {"free_tries": 2, "backoff": "1s", "max_backoff": "2s", "global_per_minute": 1000}
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "providers": {"p": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]}},
            "ui": {"login": login},
        }
        with Gateway(config) as gw, httpx.Client(base_url=gw.root_url, timeout=10) as client:
            assert [_try(client, f"sk-guess-{i}").status_code for i in range(2)] == [401, 401]
            locked = _try(client, "sk-guess-3")
            assert locked.status_code == 429
            assert locked.headers["retry-after"] == "1"
            assert "text/html" in locked.headers["content-type"]
            assert "Too many failed logins" in locked.text and '<form method="post"' in locked.text
            # While locked out even the right key is refused, so the answer tells a guesser nothing.
            refused = _try(client, MASTER)
            assert refused.status_code == 429 and "location" not in refused.headers
            deadline = time.monotonic() + 10
            while (done := _try(client, MASTER)).status_code == 429 and time.monotonic() < deadline:
                time.sleep(0.25)
            assert done.status_code == 303 and done.headers["location"] == "/ui/"
            assert client.get("/ui/keys").status_code == 200
