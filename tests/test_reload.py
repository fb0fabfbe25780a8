"""Hot reload: requests in flight finish on their routes, a bad config is rejected, files and SIGHUP trigger it."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llmmux.config import load_config
from llmmux.reload import ConfigWatcher
from llmmux.router import Router
from support import free_port
from support.fakes import Act, fake, fake_router
from upstreams import FakeOpenAI

USER = [{"role": "user", "content": "hi"}]


def two_routes(target: str) -> dict[str, object]:
    return {
        "providers": {"a": {"models": ["m"]}, "b": {"models": ["m"]}},
        "routing": {"exact_matches": {"r": {"provider": target, "model": "m"}}},
    }


async def test_in_flight_requests_finish_on_their_route_and_new_ones_take_the_new_one() -> None:
    router = fake_router(two_routes("a"))
    old_a, old_b = fake(router, "a"), fake(router, "b")
    old_a.default = Act(delay=0.1)
    slow = asyncio.ensure_future(router.chat(model="r", messages=USER))
    await asyncio.sleep(0.02)
    new = fake_router({**two_routes("b"), "providers": {"b": {"models": ["m"]}}})
    router.reload(new.config)
    assert (await router.chat(model="r", messages=USER)).provider == "b"
    assert router.providers["b"] is old_b  # unchanged provider: same object, same connection pool
    assert not old_a.closed  # retired, but still answering the request it started
    assert (await slow).provider == "a"
    await asyncio.sleep(0.15)
    assert old_a.closed
    await router.aclose()
    await new.aclose()


async def test_health_and_counters_survive_a_reload() -> None:
    router = fake_router(two_routes("a"))
    for _ in range(3):
        router.health.failed("a", "boom")
    router.reload(fake_router(two_routes("a")).config)
    assert router.health.record("a").state == "cooldown"
    await router.aclose()


async def test_a_config_with_errors_is_refused_and_the_old_one_kept(tmp_path: Path) -> None:
    # Errors are found where the config is loaded (the routing sections are typed there), so a
    # reload from the source refuses the file and the router keeps what it had.
    path = tmp_path / "llmmux.yaml"
    path.write_text(GOOD.format(url="http://127.0.0.1:9/v1"))
    router = Router.from_config(path)
    before = router.config
    path.write_text(GOOD.format(url="http://127.0.0.1:9/v1") + "routing_strategy: fastest-possible\n")
    assert not await router.reload_from_source()
    assert router.config is before and router.route("first").candidates
    await router.aclose()


GOOD = """
providers:
  up: {{type: openai_compatible, base_url: "{url}", models: [first]}}
"""


async def test_the_watcher_reloads_on_file_change_and_trigger_and_rejects_bad_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "llmmux.yaml"
    path.write_text(GOOD.format(url="http://127.0.0.1:9/v1"))
    config, _ = load_config(path)
    router = Router(config)
    watcher = ConfigWatcher(router, interval_s=0.02)
    watcher.start(sighup=False)
    try:
        path.write_text(GOOD.format(url="http://127.0.0.1:9/v1").replace("[first]", "[first, second]"))
        await _until(lambda: "second" in router.models())
        with caplog.at_level(logging.ERROR, logger="llmmux"):
            path.write_text("providers:\n  up: {type: openai_compatible, base_url: nope}\n")
            await _until(lambda: "keeping the previous configuration" in caplog.text)
        assert "providers.up.base_url" in caplog.text and "second" in router.models()
        reloads = watcher.reloads
        path.write_text(GOOD.format(url="http://127.0.0.1:9/v1"))
        await _until(lambda: watcher.reloads == reloads + 1)
        watcher.trigger()  # what SIGHUP does
        await _until(lambda: watcher.reloads == reloads + 2)
    finally:
        await watcher.stop()
        await router.aclose()


def test_sighup_reloads_a_running_server(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        path = tmp_path / "llmmux.yaml"
        path.write_text(GOOD.format(url=up.url))
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llmmux",
                "serve",
                "--config",
                str(path),
                "--port",
                str(port),
                "--reload-interval",
                "3600",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = f"http://127.0.0.1:{port}/v1/models"
            assert _models(url) == {"first"}
            path.write_text(GOOD.format(url=up.url).replace("[first]", "[first, second]"))
            assert _models(url) == {"first"}  # polling is hourly here: only SIGHUP reloads
            server.send_signal(signal.SIGHUP)
            _wait(lambda: _models(url) == {"first", "second"})
            path.write_text("providers: [broken")
            server.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            assert _models(url) == {"first", "second"} and server.poll() is None
        finally:
            server.send_signal(signal.SIGTERM)
            _, err = server.communicate(timeout=15)
        assert "config reload rejected" in err and "not valid YAML" in err


def _models(url: str) -> set[str]:
    deadline = time.monotonic() + 15
    while True:
        try:
            return {m["id"] for m in httpx.get(url, timeout=2).json()["data"]}
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)


def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


async def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
