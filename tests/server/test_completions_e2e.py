"""Legacy completions in front: the official `openai` SDK -> llmmux -> every backend format.

Each hop is real HTTP on 127.0.0.1: `client.completions.create` against an OpenAI-format, an
Ollama and an Anthropic backend (mapped onto chat), and against an OpenAI-format provider with
`completions: native` (forwarded to its own /v1/completions).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support import Gateway
from support.backends import MODELS, NATIVE, NATIVE_UPSTREAM, Backends, three_backends
from upstreams import drop_mid_stream, split_text, status

KINDS = list(MODELS)


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    with three_backends() as fakes:
        yield fakes


@pytest.fixture(scope="module")
def gateway(backends: Backends) -> Iterator[Gateway]:
    with Gateway(backends.config()) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway, backends: Backends) -> Iterator[openai.OpenAI]:
    backends.reset()
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=10) as sdk:
        yield sdk


def user_texts(kind: str, body: Any) -> list[str]:
    """The user turns a chat backend received, whatever its format."""
    messages = [m for m in body["messages"] if m["role"] == "user"]
    if kind == "anthropic":
        return [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in messages]
    return [m["content"] for m in messages]


@pytest.mark.parametrize("kind", KINDS)
def test_a_prompt_is_answered_by_every_backend(client: openai.OpenAI, backends: Backends, kind: str) -> None:
    raw = client.completions.with_raw_response.create(
        model=MODELS[kind], prompt="hello there", max_tokens=20, temperature=0.3
    )
    completion = raw.parse()
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.model == MODELS[kind]
    [choice] = completion.choices
    assert (choice.index, choice.finish_reason, choice.logprobs) == (0, "stop", None)
    assert choice.text.lower() == "echo: hello there"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 3
    assert raw.headers["x-llmmux-model"] != ""
    assert user_texts(kind, backends.last_chat(kind)) == ["hello there"]
    assert backends.last_chat(kind)["temperature" if kind != "ollama" else "options"] in (
        0.3,
        {"temperature": 0.3, "num_predict": 20},
    )


@pytest.mark.parametrize("kind", KINDS)
def test_prompt_lists_and_n_are_numbered_as_openai_does(client: openai.OpenAI, backends: Backends, kind: str) -> None:
    completion = client.completions.create(model=MODELS[kind], prompt=["one", "two"], n=2, echo=True)
    assert [(c.index, c.text.lower()) for c in completion.choices] == [
        (0, "oneecho: one"),
        (1, "oneecho: one"),
        (2, "twoecho: two"),
        (3, "twoecho: two"),
    ]
    chats = [r.json for r in backends.chats(kind)]
    if kind == "openai":  # several choices per request where the backend can return them
        assert sorted((user_texts(kind, c), c["n"]) for c in chats) == [(["one"], 2), (["two"], 2)]
    else:
        assert sorted(user_texts(kind, c)[0] for c in chats) == ["one", "one", "two", "two"]
        assert all("n" not in c for c in chats)


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_on_every_backend(client: openai.OpenAI, kind: str) -> None:
    chunks = list(
        client.completions.create(
            model=MODELS[kind], prompt="stream this", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices).lower() == "echo: stream this"
    assert {c.object for c in chunks} == {"text_completion"} and {c.model for c in chunks} == {MODELS[kind]}
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


@pytest.mark.parametrize("kind", KINDS)
def test_streamed_prompt_lists_with_n(client: openai.OpenAI, kind: str) -> None:
    texts: dict[int, str] = {}
    finished: dict[int, str | None] = {}
    for chunk in client.completions.create(model=MODELS[kind], prompt=["uno", "dos"], n=2, stream=True):
        assert chunk.usage is None  # not asked for
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            finished[choice.index] = choice.finish_reason or finished.get(choice.index)
    assert {i: t.lower() for i, t in texts.items()} == {0: "echo: uno", 1: "echo: uno", 2: "echo: dos", 3: "echo: dos"}
    assert finished == {0: "stop", 1: "stop", 2: "stop", 3: "stop"}


def test_golden_stream_frames(gateway: Gateway, backends: Backends) -> None:
    body = {"model": MODELS["openai"], "prompt": "ab", "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", gateway.url + "/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    frames = [json.loads(line[6:]) for line in lines[:-1]]
    assert [list(f) for f in frames] == [["id", "object", "created", "choices", "model"]] * (len(frames) - 1) + [
        ["id", "object", "created", "choices", "model", "usage"]
    ]
    assert [f["choices"] for f in frames] == [
        [{"text": piece, "index": 0, "logprobs": None, "finish_reason": None}]
        for piece in split_text("echo: ab", backends.openai.stream_chunks)
    ] + [[{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}], []]
    assert frames[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_logprobs_are_asked_for_and_null_unless_the_backend_gives_them(
    client: openai.OpenAI, backends: Backends
) -> None:
    completion = client.completions.create(model=MODELS["openai"], prompt="hi", logprobs=2, seed=7, user="u1")
    assert completion.choices[0].logprobs is None
    sent = backends.last_chat("openai")
    assert (sent["logprobs"], sent["top_logprobs"], sent["seed"], sent["user"]) == (True, 2, 7, "u1")


def test_native_completions_forward_the_body(client: openai.OpenAI, backends: Backends) -> None:
    raw = client.completions.with_raw_response.create(
        model=NATIVE, prompt=[1, 2, 3], max_tokens=5, suffix="end", extra_body={"provider": "instruct"}
    )
    completion = raw.parse()
    assert completion.model == NATIVE and completion.id == "cmpl-fake000000"  # the upstream's own reply
    assert completion.choices[0].text == "echo: [1, 2, 3]"
    assert (raw.headers["x-llmmux-provider"], raw.headers["x-llmmux-model"]) == ("instruct", NATIVE_UPSTREAM)
    [sent] = backends.openai.requests_to("/v1/completions")
    assert sent.json == {"model": NATIVE_UPSTREAM, "prompt": [1, 2, 3], "max_tokens": 5, "suffix": "end"}
    assert backends.chats("openai") == []


def test_native_completions_stream_through(client: openai.OpenAI, backends: Backends) -> None:
    chunks = list(client.completions.create(model=NATIVE, prompt="hello", stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: hello"
    assert {c.model for c in chunks} == {NATIVE} and all(c.usage is None for c in chunks)
    sent = backends.openai.requests_to("/v1/completions")[-1].json
    assert (sent["model"], sent["stream"], sent["stream_options"]) == (NATIVE_UPSTREAM, True, {"include_usage": True})


def test_token_prompts_need_a_native_backend(client: openai.OpenAI, backends: Backends) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model=MODELS["anthropic"], prompt=[1, 2, 3])
    assert caught.value.param == "prompt" and "completions: native" in caught.value.message
    assert backends.anthropic.requests == []


def test_bad_input_gets_openai_errors(gateway: Gateway, client: openai.OpenAI) -> None:
    response = httpx.post(gateway.url + "/completions", json={"model": MODELS["openai"]})
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Missing required parameter: 'prompt'.",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": None,
        }
    }
    response = httpx.post(gateway.url + "/completions", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as missing:
        client.completions.create(model="no-such-model", prompt="x")
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model=MODELS["openai"], prompt="x", n=0)
    assert bad.value.param == "n"


def test_an_upstream_refusal_fails_the_whole_request(client: openai.OpenAI, backends: Backends) -> None:
    backends.ollama.script(status(404))
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model=MODELS["ollama"], prompt=["a", "b", "c"])


def test_a_failure_mid_stream_ends_with_an_error_event(client: openai.OpenAI, backends: Backends) -> None:
    backends.openai.script(drop_mid_stream(after_chunks=2))
    received = []
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in client.completions.create(model=MODELS["openai"], prompt="hello there", stream=True):
            received.append(chunk)
    assert len(received) == 1 and received[0].choices[0].text.startswith("echo")
