"""A prompt past a local model's context is the client's 400 `context_length_exceeded`, in
each door's own shape, never a retryable 502: for an in-process model (the tiny GGUF with
llama.cpp's smallest context) and for a llama-server reached over HTTP (a fake one answering with
llama-server's own error bodies)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import ollama
import openai
import pytest

from llmmux.router import Router
from llmmux.server.app import App
from local.fixtures import tiny_gguf  # noqa: F401  (fixture)
from local.serving import serving
from upstreams import FakeOpenAI, status

LONG: Any = [{"role": "user", "content": "sky " * 80}]
# llama-server's bodies: a prompt past the context, and its KV cache filling mid-generation.
TOO_LONG = {
    "error": {
        "code": 400,
        "message": "request (4476 tokens) exceeds the available context size (4096 tokens), try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 4476,
        "n_ctx": 4096,
    }
}
FILLED = {"error": {"code": 500, "message": "Context size has been exceeded.", "type": "server_error"}}
# The in-process llama-cpp-python engine's words, as its error payload carries them.
PYTHON_ENGINE = {
    "error": {
        "code": 400,
        "message": "Requested tokens (5000) exceed context window of 4096",
        "type": "invalid_request_error",
    }
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def base(tiny_gguf: Path, upstream: FakeOpenAI) -> Iterator[str]:  # noqa: F811
    config = {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "engine": "xllamacpp",
                "n_threads": 1,
                "models": [{"name": "tiny", "path": str(tiny_gguf), "n_ctx": 64}],
            },
            "server": {"type": "llama_cpp_server", "base_url": upstream.url, "models": ["remote"]},
        },
        "health_checks": {"enabled": False},
    }
    with serving(App(Router.from_config(config))) as url:
        yield url


def test_the_openai_door_says_context_length_exceeded(base: str) -> None:
    with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as plain:
            sdk.chat.completions.create(model="tiny", messages=LONG)
        with pytest.raises(openai.BadRequestError) as streamed:
            list(sdk.chat.completions.create(model="tiny", messages=LONG, stream=True))
    for caught in (plain, streamed):
        assert caught.value.code == "context_length_exceeded"
        assert caught.value.type == "invalid_request_error"
        assert "exceeds the available context size" in caught.value.message


def test_the_anthropic_door_says_invalid_request(base: str) -> None:
    with anthropic.Anthropic(base_url=base, api_key="x", max_retries=0) as sdk:
        with pytest.raises(anthropic.BadRequestError) as caught:
            sdk.messages.create(model="tiny", max_tokens=5, messages=LONG)
    body: Any = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "context size" in body["error"]["message"]


def test_the_ollama_door_says_it_in_its_error_field(base: str) -> None:
    with ollama.Client(host=base) as sdk, pytest.raises(ollama.ResponseError) as caught:
        sdk.chat(model="tiny", messages=LONG)
    assert caught.value.status_code == 400 and "context size" in caught.value.error


@pytest.mark.parametrize("body", [TOO_LONG, FILLED, PYTHON_ENGINE], ids=["prompt", "mid-generation", "python-engine"])
def test_llama_server_over_http_is_not_retried_and_speaks_openai(base: str, upstream: FakeOpenAI, body: Any) -> None:
    upstream.script(status(body["error"]["code"], body))
    before = len(upstream.requests)
    with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model="remote", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.message.endswith(body["error"]["message"])
    assert len(upstream.requests) == before + 1  # a shorter prompt is the fix, not another try
