"""Active health checks against fake upstreams over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from llmmux.health import ACTIVE, UNAVAILABLE, HealthSettings, check
from llmmux.router import Router
from upstreams import FakeOpenAI, closed_port_url, hang, status

FAST = {
    "interval_seconds": 0.05,
    "timeout_seconds": 0.3,
    "retry_attempts": 2,
    "retry_delay_seconds": 0.01,
    "cooldown_seconds": 60,
}


def config(url: str, **health: Any) -> dict[str, Any]:
    return {
        "providers": {"up": {"type": "openai_compatible", "base_url": url, "models": ["m"]}},
        "health_checks": {**FAST, **health},
    }


async def test_one_check_retries_before_giving_up() -> None:
    with FakeOpenAI() as up:
        up.script(status(503), path="/v1/models")
        router = Router.from_config(config(up.url))
        try:
            record = await check(router.providers["up"], HealthSettings(retry_attempts=3, retry_delay_s=0.0))
        finally:
            await router.aclose()
        assert record.ok and record.attempts == 2
        assert [r.path for r in up.requests] == ["/v1/models", "/v1/models"]


async def test_a_hung_health_endpoint_times_out() -> None:
    with FakeOpenAI() as up:
        up.set_default(hang())
        router = Router.from_config(config(up.url))
        try:
            record = await check(router.providers["up"], HealthSettings(timeout_s=0.2, retry_attempts=1))
        finally:
            await router.aclose()
        assert not record.ok and record.latency_ms < 1000


async def test_background_checks_mark_unavailable_then_active_and_count_transitions() -> None:
    with FakeOpenAI() as up:
        up.set_default(status(503))
        async with Router.from_config(config(up.url)) as router:
            await _until(lambda: router.health.record("up").state == UNAVAILABLE)
            row = router.health_report()[0]
            assert row["routable"] is False and row["last_probe"]["status"] == 503
            assert "health check failed 2 time(s)" in row["reason"]
            up.set_default(None)
            await _until(lambda: router.health.record("up").state == ACTIVE)
            assert router.health.transitions("up") == {"active->unavailable": 1, "unavailable->active": 1}
        assert not router._prober  # stopped with the router


async def test_per_provider_endpoint_and_refused_connections() -> None:
    with FakeOpenAI() as up:
        cfg = config(up.url, up={"endpoint": up.root_url + "/custom/health"})
        cfg["providers"]["gone"] = {"type": "openai_compatible", "base_url": closed_port_url(), "models": ["m"]}
        router = Router.from_config(cfg)
        try:
            await router.check_health()
        finally:
            await router.aclose()
        assert {r.path for r in up.requests} == {"/custom/health"}
        report = {row["name"]: row for row in router.health_report()}
        assert report["up"]["last_probe"]["status"] == 404
        assert report["gone"]["state"] == UNAVAILABLE and report["gone"]["last_probe"]["status"] is None


async def test_disabled_checks_send_nothing() -> None:
    with FakeOpenAI() as up:
        async with Router.from_config(config(up.url, enabled=False)):
            await asyncio.sleep(0.15)
        assert up.requests == []


async def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
