"""A restricted key reaches only what its allow-list names: every candidate, every door, every way of naming a route.

One `llmmux serve` with a master key; `narrow` may use only `fake-gpt` (alpha's gpt-a,
which falls back to beta's gpt-b), `wide` every model. Each test is a hole that was open.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from aiohttp import web

from security.served import Served
from upstreams import FakeOpenAI, status
from upstreams.base import Endpoint, Exchange, send_json
from upstreams.ollama_server import FakeOllama

MASTER = "sk-master-ACCESS-0123456789abcdef"
USER = [{"role": "user", "content": "hello"}]


class LoadedOllama(FakeOllama):
    """Reports every model it holds as loaded on /api/ps."""

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [*super().endpoints(), ("GET", "/api/ps", self._ps)]

    async def _ps(self, ex: Exchange) -> web.StreamResponse:
        return await send_json(ex, {"models": [{"name": name, "model": name} for name in self.models]})


def config(alpha: FakeOpenAI, beta: FakeOpenAI, ollama: FakeOllama) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "health_checks": {"enabled": False, "passive": False},
        "providers": {
            "alpha": {"type": "openai_compatible", "base_url": alpha.url, "models": ["gpt-a", "code-a"]},
            "beta": {"type": "openai_compatible", "base_url": beta.url, "models": ["gpt-b", "code-b"]},
            "local": {"type": "ollama", "base_url": ollama.url, "models": ["llama3.2:latest"]},
        },
        "routing": {
            "exact_matches": {
                "fake-gpt": {"provider": "alpha", "model": "gpt-a", "fallback": ["fake-b"]},
                "fake-b": {"provider": "beta", "model": "gpt-b"},
            },
            "patterns": [{"pattern": "^pat/(.+)$", "provider": "beta", "model": "\\1"}],
        },
        "capabilities": {"code": {"preferred_models": ["code-b"]}},
    }


class Env:
    def __init__(self, gw: Served, alpha: FakeOpenAI, beta: FakeOpenAI, ollama: FakeOllama) -> None:
        self.gw, self.alpha, self.beta, self.ollama = gw, alpha, beta, ollama
        self.narrow = gw.key("narrow", models=["fake-gpt"])
        self.wide = gw.key("wide")
        self.patterned = gw.key("patterned", models=["pat/*"])

    def reset(self) -> None:
        for up in (self.alpha, self.beta, self.ollama):
            up.reset()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with FakeOpenAI() as alpha, FakeOpenAI() as beta, LoadedOllama() as ollama:
        folder: Path = tmp_path_factory.mktemp("access")
        with Served(folder, config(alpha, beta, ollama), MASTER) as gw:
            yield Env(gw, alpha, beta, ollama)


@pytest.fixture
def e(env: Env) -> Env:
    env.reset()
    return env


def sdk(e: Env, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=e.gw.url + "/v1", api_key=key, max_retries=0)


def test_a_capability_header_cannot_route_past_the_allow_list(e: Env) -> None:
    with sdk(e, e.narrow) as client, pytest.raises(openai.PermissionDeniedError) as denied:
        client.chat.completions.create(model="fake-gpt", messages=USER, extra_headers={"x-llmmux-capability": "code"})  # type: ignore[call-overload]
    assert denied.value.body == {
        "message": "The API key 'narrow' may not use model 'fake-gpt' (allowed: fake-gpt).",
        "type": "permission_error",
        "param": "model",
        "code": "model_not_allowed",
    }
    assert not e.beta.requests


@pytest.mark.parametrize(
    ("door", "body"),
    [
        ("/v1/chat/completions", {"model": "fake-gpt", "messages": USER, "capability": "code"}),
        ("/v1/completions", {"model": "fake-gpt", "prompt": "hi", "capability": "code"}),
        ("/v1/messages", {"model": "fake-gpt", "max_tokens": 5, "messages": USER, "capability": "code"}),
        ("/v1/chat/completions", {"model": "fake-gpt", "messages": USER, "provider": "beta"}),
        ("/v1/messages", {"model": "fake-gpt", "max_tokens": 5, "messages": USER, "provider": "beta"}),
        ("/v1/embeddings", {"model": "fake-gpt", "input": "hi", "provider": "beta"}),
        ("/v1/chat/completions", {"model": "fake-gpt", "messages": USER, "stream": True, "provider": "beta"}),
    ],
)
def test_capability_and_provider_pin_are_checked_on_every_door(e: Env, door: str, body: dict[str, Any]) -> None:
    refused = e.gw.post(door, body, e.narrow)
    assert refused.status_code == 403, refused.text
    error = refused.json()
    if door == "/v1/messages":
        assert error["type"] == "error" and error["error"]["type"] == "permission_error"
    else:
        assert error["error"]["code"] == "model_not_allowed"
    assert not e.beta.requests  # nothing reached the forbidden provider
    assert e.gw.post(door, body, e.wide).status_code == 200  # the same request is fine for a key without a list


@pytest.mark.parametrize(
    ("door", "upstream_path", "body"),
    [
        ("/v1/chat/completions", "/chat/completions", {"model": "fake-gpt", "messages": USER}),
        ("/api/chat", "/chat/completions", {"model": "fake-gpt", "messages": USER, "stream": False}),
        ("/api/generate", "/chat/completions", {"model": "fake-gpt", "prompt": "hi", "stream": False}),
        ("/v1/messages", "/chat/completions", {"model": "fake-gpt", "max_tokens": 5, "messages": USER}),
        ("/v1/responses", "/chat/completions", {"model": "fake-gpt", "input": "hi"}),
        ("/v1/embeddings", "/embeddings", {"model": "fake-gpt", "input": "hi"}),
        ("/api/embed", "/embeddings", {"model": "fake-gpt", "input": "hi"}),
    ],
)
def test_a_fallback_to_a_forbidden_model_never_happens(
    e: Env, door: str, upstream_path: str, body: dict[str, Any]
) -> None:
    e.alpha.script(status(500), status(500), path=upstream_path)
    failed = e.gw.post(door, body, e.narrow)
    assert failed.status_code == 502, failed.text
    assert not e.beta.requests
    e.alpha.script(status(500), status(500), path=upstream_path)
    done = e.gw.post(door, body, e.wide)  # a key that may use fake-b falls back to it, as configured
    assert done.status_code == 200 and done.headers["x-llmmux-provider"] == "beta", done.text


def test_a_pattern_key_cannot_pin_a_provider_its_pattern_does_not_reach(e: Env) -> None:
    assert e.gw.post("/v1/chat/completions", {"model": "pat/gpt-b", "messages": USER}, e.patterned).status_code == 200
    pinned = {"model": "pat/gpt-b", "messages": USER, "capability": "code"}
    assert e.gw.post("/v1/chat/completions", pinned, e.patterned).status_code == 403


def test_the_models_a_key_may_use_go_by_their_upstream_names_too(e: Env) -> None:
    # fake-gpt is alpha's gpt-a: the same upstream model by any of its names, and nothing else.
    for name in ("fake-gpt", "gpt-a", "alpha/gpt-a"):
        assert e.gw.post("/v1/chat/completions", {"model": name, "messages": USER}, e.narrow).status_code == 200
    for name in ("fake-b", "gpt-b", "beta/gpt-b", "code-a", "capability:code", "pat/gpt-a"):
        assert e.gw.post("/v1/chat/completions", {"model": name, "messages": USER}, e.narrow).status_code == 403, name
    assert not e.beta.requests


def test_model_listings_show_only_what_the_key_may_use(e: Env) -> None:
    listed = {m["id"] for m in e.gw.get("/v1/models", e.narrow).json()["data"]}
    assert listed == {"fake-gpt", "gpt-a"}
    assert {m["name"] for m in e.gw.get("/api/tags", e.narrow).json()["models"]} == {"fake-gpt", "gpt-a"}
    everything = {m["id"] for m in e.gw.get("/v1/models", e.wide).json()["data"]}
    assert {"fake-b", "gpt-b", "code-b", "llama3.2:latest"} <= everything
    assert e.gw.get("/v1/models/fake-gpt", e.narrow).status_code == 200
    hidden = e.gw.get("/v1/models/fake-b", e.narrow)
    assert hidden.status_code == 404 and "fake-b" in hidden.json()["error"]["message"]
    assert e.gw.get("/v1/models/fake-b", e.wide).status_code == 200


def test_loaded_models_show_only_what_the_key_may_use(e: Env) -> None:
    assert e.gw.get("/api/ps", e.narrow).json()["models"] == []
    assert "llama3.2:latest" in {m["name"] for m in e.gw.get("/api/ps", e.wide).json()["models"]}


def test_show_and_count_tokens_accept_only_models_the_key_may_use(e: Env) -> None:
    assert e.gw.post("/api/show", {"model": "fake-gpt"}, e.narrow).status_code == 200
    shown = e.gw.post("/api/show", {"model": "llama3.2:latest"}, e.narrow)
    assert shown.status_code == 404 and "error" in shown.json()
    assert e.gw.post("/api/show", {"model": "llama3.2:latest"}, e.wide).status_code == 200
    with anthropic.Anthropic(base_url=e.gw.url, api_key=e.narrow, max_retries=0) as claude:
        assert claude.messages.count_tokens(model="fake-gpt", messages=USER).input_tokens > 0  # type: ignore[arg-type]
        with pytest.raises(anthropic.PermissionDeniedError):
            claude.messages.count_tokens(model="fake-b", messages=USER)  # type: ignore[arg-type]


def test_a_404_suggests_no_model_the_key_may_not_use(e: Env) -> None:
    missing = e.gw.post("/v1/chat/completions", {"model": "fake-bb", "messages": USER}, e.narrow)
    assert missing.status_code == 404
    assert "fake-b" not in missing.json()["error"]["message"].replace("'fake-bb'", "")
    admin = e.gw.post("/v1/chat/completions", {"model": "fake-bb", "messages": USER}, MASTER)
    assert "Did you mean: fake-b" in admin.json()["error"]["message"]


def test_health_details_are_for_the_admin_and_a_key_sees_its_own_providers(e: Env) -> None:
    mine = e.gw.get("/health/providers", e.narrow)
    assert mine.status_code == 200
    assert mine.json()["providers"] == [{"name": "alpha", "state": "active", "routable": True}]
    assert "skipped" not in mine.json()
    full = e.gw.get("/health/providers", MASTER).json()
    assert {row["name"] for row in full["providers"]} == {"alpha", "beta", "local"}
    assert "last_error" in full["providers"][0]
