"""llmmux.wire.completions: legacy completions requests -> chat (or an upstream's own endpoint), and back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmmux.errors import InvalidRequest, StreamInterrupted
from llmmux.types import ChatChunk, ChatResponse, Choice, ChunkChoice, Delta, Message, Usage
from llmmux.wire import completions as wire
from llmmux.wire.sse import SSEParser

LOGPROBS = {
    "content": [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1}, {"token": "Yo", "logprob": -2.5}],
        },
        {"token": "!", "logprob": -0.3, "bytes": [33], "top_logprobs": [{"token": "!", "logprob": -0.3}]},
    ]
}


def decode(**body: Any) -> wire.CompletionRequest:
    return wire.decode_request({"model": "m", "prompt": "Say hi", **body})


def reply(*texts: str, finish: str = "stop", usage: Usage | None = None, logprobs: Any = None) -> ChatResponse:
    choices = [
        Choice(
            index=i,
            message=Message(role="assistant", content=t),
            finish_reason=finish,  # type: ignore[arg-type]
            logprobs=logprobs,
        )
        for i, t in enumerate(texts)
    ]
    return ChatResponse(id="c", model="up", created=1, choices=choices, usage=usage)


def test_a_prompt_is_one_user_message_with_the_settings_of_the_request() -> None:
    request = decode(
        max_tokens=7,
        temperature=0.5,
        top_p=0.9,
        stop="\n",
        seed=3,
        user="u",
        logit_bias={"50256": -100},
        presence_penalty=0.1,
        frequency_penalty=0.2,
        provider="vllm",
    )
    [(first, chat)] = wire.chat_parts(request, native_n=True)
    assert first == 0
    assert chat.messages == [Message(role="user", content="Say hi")]
    assert (chat.max_tokens, chat.temperature, chat.top_p, chat.stop, chat.seed, chat.user) == (
        7,
        0.5,
        0.9,
        ["\n"],
        3,
        "u",
    )
    assert (chat.presence_penalty, chat.frequency_penalty, chat.provider, chat.n) == (0.1, 0.2, "vllm", None)
    assert chat.extra == {"logit_bias": {"50256": -100}}
    assert chat.passthrough is None and chat.client_wire is None


def test_prompts_and_n_are_numbered_as_openai_numbers_choices() -> None:
    request = decode(prompt=["a", "b"], n=3)
    native = wire.chat_parts(request, native_n=True)
    assert [(first, chat.n, chat.messages[0].content) for first, chat in native] == [(0, 3, "a"), (3, 3, "b")]
    fanned = wire.chat_parts(request, native_n=False)
    assert [(first, chat.n, chat.messages[0].content) for first, chat in fanned] == [
        (0, None, "a"),
        (1, None, "a"),
        (2, None, "a"),
        (3, None, "b"),
        (4, None, "b"),
        (5, None, "b"),
    ]


def test_logprobs_ask_chat_for_per_token_logprobs() -> None:
    [(_, chat)] = wire.chat_parts(decode(logprobs=2), native_n=True)
    assert chat.extra == {"logprobs": True, "top_logprobs": 2}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": None}, "prompt"),
        ({"prompt": []}, "prompt"),
        ({"prompt": [1, "a"]}, "prompt"),
        ({"prompt": [[1], []]}, "prompt"),
        ({"prompt": {"text": "x"}}, "prompt"),
        ({"n": 0}, "n"),
        ({"logprobs": -1}, "logprobs"),
        ({"max_tokens": "ten"}, "max_tokens"),
        ({"model": 5}, "model"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode(**body)
    assert (caught.value.status, caught.value.param) == (400, param)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": [[1, 2], [3]]}, "prompt"),
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
    ],
)
def test_what_only_a_native_backend_can_do_is_refused_for_chat(body: dict[str, Any], param: str) -> None:
    request = decode(**body)
    with pytest.raises(InvalidRequest) as caught:
        wire.chat_parts(request, native_n=True)
    assert caught.value.param == param
    passthrough = wire.native_request(request).passthrough
    assert passthrough is not None and passthrough.body == {"model": "m", "prompt": "Say hi", **body}


def test_a_native_upstream_gets_the_body_with_model_and_streaming_set() -> None:
    request = wire.native_request(decode(prompt=[[1, 2]], stream=True, provider="vllm", suffix="x"))
    assert request.client_wire == wire.WIRE
    assert json.loads(wire.encode_request(request, "upstream-model", stream=True)) == {
        "model": "upstream-model",
        "prompt": [[1, 2]],
        "stream": True,
        "suffix": "x",
        "stream_options": {"include_usage": True},
    }
    assert json.loads(wire.encode_request(request, "upstream-model", stream=False)) == {
        "model": "upstream-model",
        "prompt": [[1, 2]],
        "suffix": "x",
    }


def test_chat_replies_become_one_text_completion() -> None:
    request = decode(prompt=["a", "b"], n=2, echo=True)
    parts = [
        (0, reply("x1", "x2", usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3))),
        (2, reply("y1", finish="tool_calls", usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))),
        (3, reply("y2", finish="length")),
    ]
    body = json.loads(wire.encode_response(request, parts, "public"))
    assert body["id"].startswith("cmpl-") and body["object"] == "text_completion" and body["model"] == "public"
    assert body["choices"] == [
        {"text": "ax1", "index": 0, "logprobs": None, "finish_reason": "stop"},
        {"text": "ax2", "index": 1, "logprobs": None, "finish_reason": "stop"},
        {"text": "by1", "index": 2, "logprobs": None, "finish_reason": "stop"},
        {"text": "by2", "index": 3, "logprobs": None, "finish_reason": "length"},
    ]
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_chat_logprobs_in_the_legacy_shape() -> None:
    body = json.loads(wire.encode_response(decode(logprobs=1, echo=True), [(0, reply("Hi!", logprobs=LOGPROBS))], "m"))
    assert body["choices"][0]["logprobs"] == {
        "tokens": ["Hi", "!"],
        "token_logprobs": [-0.1, -0.3],
        "top_logprobs": [{"Hi": -0.1, "Yo": -2.5}, {"!": -0.3}],
        "text_offset": [6, 8],
    }
    plain = json.loads(wire.encode_response(decode(), [(0, reply("Hi!", logprobs=LOGPROBS))], "m"))
    assert plain["choices"][0]["logprobs"] is None  # not asked for


def test_a_native_reply_passes_through_with_the_public_name() -> None:
    data = (
        b'{"id":"cmpl-1","object":"text_completion","created":5,"model":"up","choices":[{"text":"ok",'
        b'"index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":2,'
        b'"completion_tokens":1,"total_tokens":3}}'
    )
    decoded = wire.decode_response(data)
    assert (decoded.choices[0].message.content, decoded.choices[0].finish_reason) == ("ok", "length")
    assert decoded.usage == Usage(prompt_tokens=2, completion_tokens=1, total_tokens=3)
    assert wire.encode_response(decode(), [(0, decoded)], "public") == data.replace(b'"up"', b'"public"')


# -- streams --


def chunk(index: int, text: str | None, finish: str | None = None, logprobs: Any = None) -> ChatChunk:
    choice = ChunkChoice(
        index=index,
        delta=Delta(content=text),
        finish_reason=finish,  # type: ignore[arg-type]
        logprobs=logprobs,
    )
    return ChatChunk(id="c", model="up", created=1, choices=[choice])


def usage_chunk(prompt: int, completion: int) -> ChatChunk:
    return ChatChunk(
        id="c",
        model="up",
        created=1,
        choices=[],
        usage=Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion),
    )


def frames(data: bytes) -> list[Any]:
    return [payload.decode() if payload == b"[DONE]" else json.loads(payload) for _, payload in SSEParser().feed(data)]


def test_golden_stream_of_two_prompts_with_echo_and_usage() -> None:
    request = decode(prompt=["a", "b"], echo=True, stream=True, stream_options={"include_usage": True})
    encoder = wire.StreamEncoder(request, "public")
    data = b"".join(
        [
            encoder.encode(0, chunk(0, "")),
            encoder.encode(1, chunk(0, "B")),
            encoder.encode(0, chunk(0, "A")),
            encoder.encode(0, chunk(0, None, "stop")),
            encoder.encode(1, chunk(0, None, "length")),
            encoder.encode(0, usage_chunk(1, 1)),
            encoder.encode(1, usage_chunk(2, 1)),
            encoder.finish(),
        ]
    )
    found = frames(data)
    assert found[-1] == "[DONE]"
    assert {(f["id"], f["object"], f["model"], f["created"]) for f in found[:-1]} == {
        (encoder.id, "text_completion", "public", encoder.created)
    }
    assert [(f["choices"], f.get("usage")) for f in found[:-1]] == [
        ([{"text": "a", "index": 0, "logprobs": None, "finish_reason": None}], None),
        ([{"text": "bB", "index": 1, "logprobs": None, "finish_reason": None}], None),
        ([{"text": "A", "index": 0, "logprobs": None, "finish_reason": None}], None),
        ([{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}], None),
        ([{"text": "", "index": 1, "logprobs": None, "finish_reason": "length"}], None),
        ([], {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
    ]


def test_a_stream_without_include_usage_has_no_usage_chunk() -> None:
    encoder = wire.StreamEncoder(decode(stream=True), "public")
    data = encoder.encode(0, chunk(0, "x", "stop")) + encoder.encode(0, usage_chunk(1, 1)) + encoder.finish()
    assert [f if isinstance(f, str) else f["choices"][0]["text"] for f in frames(data)] == ["x", "[DONE]"]


def test_streamed_logprobs_count_offsets_across_chunks() -> None:
    encoder = wire.StreamEncoder(decode(stream=True, logprobs=0), "public")
    first = {"content": LOGPROBS["content"][:1]}
    second = {"content": LOGPROBS["content"][1:]}
    data = encoder.encode(0, chunk(0, "Hi", logprobs=first)) + encoder.encode(0, chunk(0, "!", logprobs=second))
    offsets = [f["choices"][0]["logprobs"]["text_offset"] for f in frames(data)]
    assert offsets == [[0], [2]]


def test_native_chunks_pass_through_and_their_usage_only_when_asked() -> None:
    raw = b'{"id":"cmpl-1","object":"text_completion","created":5,"model":"up","choices":[{"text":"ok","index":0}]}'
    usage = (
        b'{"id":"cmpl-1","object":"text_completion","created":5,"model":"up","choices":[],"usage":{"prompt_tokens":1}}'
    )
    quiet = wire.StreamEncoder(decode(stream=True), "public")
    assert quiet.encode(0, wire.decode_chunk(raw)) == b"data: " + raw.replace(b'"up"', b'"public"') + b"\n\n"
    assert quiet.encode(0, wire.decode_chunk(usage)) == b""
    assert quiet.finish() == b"data: [DONE]\n\n"
    asked = wire.StreamEncoder(decode(stream=True, stream_options={"include_usage": True}), "public")
    assert asked.encode(0, wire.decode_chunk(usage)) != b""
    assert asked.finish() == b"data: [DONE]\n\n"  # the upstream's own usage chunk went through


def test_a_failure_mid_stream_is_an_openai_error_event() -> None:
    assert frames(wire.StreamEncoder.error(StreamInterrupted("vllm failed mid-stream"))) == [
        {
            "error": {
                "message": "vllm failed mid-stream",
                "type": "upstream_error",
                "param": None,
                "code": "stream_interrupted",
            }
        }
    ]
