"""The loop guard through the doors, on the embedded SmolLM2 asked for something it loops on.

The same model with the guard off (`loop_guard: false`) runs on to its output cap
(`length`): that is what makes the prompt a loop. With the guard on (the default) the reply
stops a few copies in and finishes as complete in each door's terms: OpenAI `stop`,
Anthropic `end_turn`, a Responses reply `completed`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from llmmux.router import Router
from llmmux.server.app import App
from local.fixtures import smollm2_path  # noqa: F401  (fixture)
from local.serving import serving

LOOPING: Any = [{"role": "user", "content": "Write a poem where every line is: the cat sat on the mat"}]
CAP = 480  # tokens: the unguarded reply reaches it
STOPPED = 300  # the guarded one stops before: at the 4th copy of a 4-line stanza, ~230 tokens in
GREEDY: Any = {"temperature": 0, "max_tokens": CAP}
SENTENCE = "a sight to behold"  # what greedy SmolLM2 writes over and over


@pytest.fixture(scope="module")
def base(smollm2_path: Path) -> Iterator[str]:  # noqa: F811
    model = {"path": str(smollm2_path), "n_ctx": 1024, "parallel": 1}
    config = {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "engine": "xllamacpp",
                "n_threads": 1,
                "models": [{"name": "smol", **model}, {"name": "smol-unguarded", "loop_guard": False, **model}],
            }
        }
    }
    with serving(App(Router.from_config(config))) as url:
        yield url


@pytest.fixture
def client(base: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0, timeout=300) as sdk:
        yield sdk


def test_without_the_guard_the_reply_loops_to_its_cap(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="smol-unguarded", messages=LOOPING, **GREEDY)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == CAP
    assert (reply.choices[0].message.content or "").count(SENTENCE) > 10


def test_a_looping_reply_stops_early_as_complete_streamed_or_not(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="smol", messages=LOOPING, **GREEDY)
    assert whole.choices[0].finish_reason == "stop"
    text = whole.choices[0].message.content or ""
    assert text.count(SENTENCE) >= 4
    assert whole.usage is not None and 0 < whole.usage.completion_tokens < STOPPED
    assert whole.usage.prompt_tokens > 10

    chunks = list(
        client.chat.completions.create(
            model="smol", messages=LOOPING, stream=True, stream_options={"include_usage": True}, **GREEDY
        )
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text  # greedy: the same reply
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens


def test_anthropic_sees_end_turn(base: str) -> None:
    with anthropic.Anthropic(base_url=base, api_key="x", max_retries=0, timeout=300) as sdk:
        # This SDK release no longer names `temperature`; the API and the door still take it.
        message = sdk.messages.create(model="smol", messages=LOOPING, max_tokens=CAP, extra_body={"temperature": 0})
        assert message.stop_reason == "end_turn" and message.usage.output_tokens < STOPPED
        with sdk.messages.stream(
            model="smol", messages=LOOPING, max_tokens=CAP, extra_body={"temperature": 0}
        ) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "end_turn" and final.usage.output_tokens < STOPPED


def test_a_responses_reply_is_completed(client: openai.OpenAI) -> None:
    response = client.responses.create(model="smol", input=LOOPING, temperature=0, max_output_tokens=CAP)
    assert response.status == "completed" and response.incomplete_details is None
    assert response.usage is not None and response.usage.output_tokens < STOPPED
    assert response.output_text.count(SENTENCE) >= 4
