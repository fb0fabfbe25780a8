"""Provider keys never reach a client, even when an upstream (or a proxy in front of it) echoes them back.

The upstream here repeats every request header, and the bare token, in its error bodies;
each test sends something that fails there and searches what came back for the key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from security.served import Served
from upstreams.header_echo import HeaderEchoOpenAI

MASTER = "sk-master-MASKING-0123456789abcdef"
ALPHA_KEY = "alpha-PROVIDER-KEY-5f4e3d2c1b0a99"
GAMMA_KEY = "gamma-PROVIDER-KEY-0a1b2c3d4e5f77"
USER = [{"role": "user", "content": "hello"}]


def config(up: HeaderEchoOpenAI, **more_providers: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "health_checks": {"enabled": False},
        "providers": {
            "alpha": {
                "type": "openai_compatible",
                "base_url": up.url,
                "api_key": ALPHA_KEY,
                "models": ["gpt-a", "boom-401", "boom-500", "boom-midstream"],
            },
            **more_providers,
        },
    }


class Env:
    def __init__(self, gw: Served, up: HeaderEchoOpenAI) -> None:
        self.gw, self.up = gw, up
        self.user = gw.key("user")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with HeaderEchoOpenAI(api_key=None) as up:
        with Served(tmp_path_factory.mktemp("masking"), config(up), MASTER) as gw:
            yield Env(gw, up)


def assert_clean(response: httpx.Response, *secrets: str) -> None:
    seen = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    for secret in secrets or (ALPHA_KEY,):
        assert secret not in seen and secret[-12:] not in seen, seen


@pytest.mark.parametrize(
    ("door", "body"),
    [
        ("/v1/chat/completions", {"model": "boom-401", "messages": USER}),
        ("/v1/chat/completions", {"model": "boom-401", "messages": USER, "stream": True}),
        ("/v1/completions", {"model": "boom-401", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "boom-401", "input": "hi"}),
        ("/v1/messages", {"model": "boom-401", "max_tokens": 5, "messages": USER}),
        ("/v1/responses", {"model": "boom-401", "input": "hi"}),
        ("/api/chat", {"model": "boom-401", "messages": USER, "stream": False}),
        ("/api/embed", {"model": "boom-401", "input": "hi"}),
    ],
)
def test_a_passed_through_upstream_error_is_masked_on_every_door(env: Env, door: str, body: dict[str, Any]) -> None:
    failed = env.gw.post(door, body, env.user)
    assert failed.status_code >= 400
    assert "proxy rejected token" in failed.text  # the upstream's message still reaches the client
    assert_clean(failed)


@pytest.mark.parametrize(
    ("door", "body"),
    [
        ("/v1/chat/completions", {"model": "boom-midstream", "messages": USER, "stream": True}),
        ("/v1/completions", {"model": "boom-midstream", "prompt": "hi", "stream": True}),
        ("/v1/messages", {"model": "boom-midstream", "max_tokens": 5, "messages": USER, "stream": True}),
        ("/v1/responses", {"model": "boom-midstream", "input": "hi", "stream": True}),
        ("/api/chat", {"model": "boom-midstream", "messages": USER}),
    ],
)
def test_an_error_in_the_middle_of_a_stream_is_masked(env: Env, door: str, body: dict[str, Any]) -> None:
    streamed = env.gw.post(door, body, env.user)
    assert streamed.status_code == 200  # the status went out with the first chunk; the error follows in-band
    assert "proxy rejected token" in streamed.text
    assert_clean(streamed)


def test_every_attempt_message_of_a_502_is_masked(env: Env) -> None:
    failed = env.gw.post("/v1/chat/completions", {"model": "boom-500", "messages": USER}, env.user)
    assert failed.status_code == 502
    assert "proxy rejected token" in failed.json()["error"]["attempts"][0]["message"]
    assert_clean(failed)


def test_health_last_error_is_masked_for_the_admin(env: Env) -> None:
    env.gw.post("/v1/chat/completions", {"model": "boom-500", "messages": USER}, env.user)
    health = env.gw.get("/health/providers", MASTER)
    assert "proxy rejected token" in (health.json()["providers"][0]["last_error"] or "")
    assert_clean(health)
    assert "last_error" not in env.gw.get("/health/providers", env.user).text  # details are the admin's


def test_a_provider_key_added_by_hot_reload_is_masked(env: Env) -> None:
    with HeaderEchoOpenAI() as gamma_up:
        gamma = {"type": "openai_compatible", "base_url": gamma_up.url, "api_key": GAMMA_KEY, "models": ["boom-403"]}
        env.gw.write_config(config(env.up, gamma=gamma))
        deadline = time.monotonic() + 20
        while "boom-403" not in env.gw.get("/v1/models", MASTER).text:
            assert time.monotonic() < deadline, "the gateway did not reload its config"
            time.sleep(0.1)
        failed = env.gw.post("/v1/chat/completions", {"model": "boom-403", "messages": USER}, env.user)
        assert "proxy rejected token" in failed.text
        assert_clean(failed, GAMMA_KEY, ALPHA_KEY)
