"""One request cannot become thousands of upstream generations (issue 12, item 8), against `llmmux serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from security.bad_input_gateway import MASTER, Served, served

USER: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("amplification")) as gw:
        yield gw
    assert "Traceback" not in gw.output[0], gw.output[0][-3000:]


def sdk(gw: Served, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)


def test_completions_with_n_5000_is_refused_before_any_upstream_call(gateway: Served) -> None:
    gateway.openai.reset()
    gateway.ollama.reset()
    with sdk(gateway) as client:
        for model in ("chat", "llama3.2:latest"):  # native n, and n fanned out as one call per choice
            with pytest.raises(openai.BadRequestError) as refused:
                client.completions.create(model=model, prompt="hi", n=5000)
            assert refused.value.body == {
                "message": "Invalid 'n': integer above maximum value. Expected a value <= 16, but got 5000 instead.",
                "type": "invalid_request_error",
                "param": "n",
                "code": "integer_above_max_value",
            }
    assert gateway.openai.requests == [] and gateway.ollama.requests == []


def test_prompts_times_n_is_capped(gateway: Served) -> None:
    gateway.ollama.reset()
    with sdk(gateway) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            client.completions.create(model="llama3.2:latest", prompt=["a"] * 10, n=10)
        assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "too_many_choices"
        assert "10 prompts x 10 choices = 100 completions" in refused.value.body["message"]
        with pytest.raises(openai.BadRequestError, match="at most 64"):
            client.completions.create(model="chat", prompt=["a"] * 65)
        assert gateway.ollama.requests == []
        answer = client.completions.create(model="llama3.2:latest", prompt=["a", "b"], n=3)
        assert len(answer.choices) == 6
    assert len(gateway.ollama.requests_to("/api/chat")) == 6


def test_chat_n_is_capped(gateway: Served) -> None:
    with sdk(gateway) as client:
        assert len(client.chat.completions.create(model="chat", messages=USER, n=16).choices) == 16
        with pytest.raises(openai.BadRequestError, match="Expected a value <= 16, but got 17"):
            client.chat.completions.create(model="chat", messages=USER, n=17)


def test_the_caps_are_configurable(tmp_path: Path) -> None:
    with served(tmp_path, max_n=2, max_choices=3) as gw, sdk(gw) as client:
        with pytest.raises(openai.BadRequestError, match="Expected a value <= 2, but got 3"):
            client.chat.completions.create(model="chat", messages=USER, n=3)
        with pytest.raises(openai.BadRequestError, match="at most 3 in one request"):
            client.completions.create(model="chat", prompt=["a", "b"], n=2)
        assert len(client.completions.create(model="chat", prompt=["a", "b", "c"]).choices) == 3


def test_a_keys_rate_limit_is_charged_per_upstream_call(gateway: Served) -> None:
    """n fanned out over a backend without native n is one call per choice, each charged to the key's rpm."""
    with gateway.client() as http:
        key = http.post("/admin/keys", json={"name": "rpm3", "rpm": 3}).json()["key"]
    gateway.ollama.reset()
    with sdk(gateway, key) as client:
        with pytest.raises(openai.RateLimitError, match="3 requests per minute"):
            client.completions.create(model="llama3.2:latest", prompt="hi", n=5)
    assert len(gateway.ollama.requests_to("/api/chat")) <= 3
