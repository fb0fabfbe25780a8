"""Bedrock Converse translation: AWS's documented examples, each direction, stream events and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmmux.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    UpstreamClientError,
    UpstreamServerError,
)
from llmmux.types import (
    ChatRequest,
    ImagePart,
    Message,
    OtherPart,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)
from llmmux.wire import bedrock
from llmmux.wire.eventstream import Decoder
from upstreams.bedrock_server import event_frame, exception_frame

# The tool from AWS's "Call a tool with the Converse API" guide, and the model's documented reply.
TOP_SONG = Tool(
    name="top_song",
    description="Get the most popular song played on a radio station.",
    parameters={
        "type": "object",
        "properties": {
            "sign": {
                "type": "string",
                "description": "The call sign for the radio station "
                "for which you want the most popular song. Example calls signs are WZPZ "
                "and WKRP.",
            }
        },
        "required": ["sign"],
    },
)
DOCUMENTED_TOOL_USE = b"""{
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                        "name": "top_song",
                        "input": {
                            "sign": "WZPZ"
                        }
                    }
                }
            ]
        }
    },
    "stopReason": "tool_use",
    "usage": {"inputTokens": 392, "outputTokens": 53, "totalTokens": 445},
    "metrics": {"latencyMs": 1520}
}"""


def encoded(request: ChatRequest) -> dict[str, Any]:
    return json.loads(bedrock.encode_request(request))


def test_documented_tool_turns_encode_as_the_guide_shows() -> None:
    messages = [
        Message(role="user", content="What is the most popular song on WZPZ?"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", name="top_song", arguments='{"sign": "WZPZ"}')],
        ),
        Message(
            role="tool",
            tool_call_id="tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            content='{"song": "Elemental Hotel", "artist": "8 Storey Hike"}',
        ),
    ]
    body = encoded(
        ChatRequest(
            model="m",
            messages=messages,
            tools=[TOP_SONG],
            tool_choice={"type": "function", "function": {"name": "top_song"}},
        )
    )
    assert body == {
        "messages": [
            {"role": "user", "content": [{"text": "What is the most popular song on WZPZ?"}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                            "name": "top_song",
                            "input": {"sign": "WZPZ"},
                        }
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                            "content": [{"json": {"song": "Elemental Hotel", "artist": "8 Storey Hike"}}],
                            "status": "success",
                        }
                    }
                ],
            },
        ],
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "top_song",
                        "description": TOP_SONG.description,
                        "inputSchema": {"json": TOP_SONG.parameters},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "top_song"}},
        },
    }


def test_documented_tool_use_reply() -> None:
    response = bedrock.decode_response(DOCUMENTED_TOOL_USE, "anthropic.claude-3-haiku", request_id="req-1", created=3)
    [choice] = response.choices
    assert (response.id, response.model, choice.finish_reason) == ("req-1", "anthropic.claude-3-haiku", "tool_calls")
    assert choice.message.tool_calls == [
        ToolCall(id="tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", name="top_song", arguments='{"sign":"WZPZ"}')
    ]
    assert response.usage == Usage(prompt_tokens=392, completion_tokens=53, total_tokens=445)


def test_system_inference_config_passthrough_and_structured_output() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="system", content="be brief"),
            Message(role="developer", content="no jokes"),
            Message(role="user", content="hi"),
        ],
        max_tokens=10,
        temperature=0.5,
        top_p=0.9,
        stop=["END"],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}},
        extra={
            "additionalModelRequestFields": {"top_k": 5},
            "guardrailConfig": {"guardrailIdentifier": "g", "guardrailVersion": "1"},
            "logprobs": True,
        },
    )
    body = encoded(request)
    assert body["system"] == [{"text": "be brief"}, {"text": "no jokes"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hi"}]}]
    assert body["inferenceConfig"] == {"maxTokens": 10, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
    assert body["additionalModelRequestFields"] == {"top_k": 5}
    assert body["guardrailConfig"] == {"guardrailIdentifier": "g", "guardrailVersion": "1"}
    assert body["outputConfig"] == {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": '{"type": "object"}', "name": "answer"}},
        }
    }
    assert "logprobs" not in body


def test_turns_of_one_role_merge_so_roles_alternate() -> None:
    messages = [
        Message(role="user", content="a"),
        Message(role="user", content="b"),
        Message(role="assistant", content="x", tool_calls=[ToolCall(id="t1", name="f", arguments="{}")]),
        Message(role="tool", tool_call_id="t1", content="plain"),
        Message(role="user", content="more"),
    ]
    body = encoded(ChatRequest(model="m", messages=messages, tools=[Tool(name="f")], tool_choice="none"))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"text": "plain"}], "status": "success"}},
        {"text": "more"},
    ]
    # A conversation with tool blocks needs toolConfig even when the client said "none".
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}


def test_tool_choice_none_without_tool_history_sends_no_tools() -> None:
    body = encoded(
        ChatRequest(model="m", messages=[Message(role="user", content="x")], tools=[TOP_SONG], tool_choice="none")
    )
    assert "toolConfig" not in body


@pytest.mark.parametrize(("choice", "expected"), [("auto", {"auto": {}}), ("required", {"any": {}})])
def test_tool_choice(choice: str, expected: dict[str, Any]) -> None:
    body = encoded(
        ChatRequest(model="m", messages=[Message(role="user", content="x")], tools=[TOP_SONG], tool_choice=choice)
    )
    assert body["toolConfig"]["toolChoice"] == expected


def test_images_and_documents() -> None:
    parts = [
        TextPart("compare"),
        ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
        ImagePart(url="s3://bucket/cat.jpg"),
        OtherPart(
            {
                "type": "file",
                "file": {"filename": "Q3 report (final).pdf", "file_data": "data:application/pdf;base64,JVBERi0x"},
            }
        ),
    ]
    body = encoded(ChatRequest(model="m", messages=[Message(role="user", content=parts)]))
    assert body["messages"][0]["content"] == [
        {"text": "compare"},
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}},
        {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://bucket/cat.jpg"}}}},
        {"document": {"format": "pdf", "name": "Q3 report (final)", "source": {"bytes": "JVBERi0x"}}},
    ]


@pytest.mark.parametrize(
    "part",
    [
        ImagePart(url="https://example.com/cat.png"),
        ImagePart(url="data:image/bmp;base64,Qk0="),
        OtherPart({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}),
    ],
    ids=["remote-image", "bmp", "audio"],
)
def test_parts_bedrock_cannot_take_are_a_400(part: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        bedrock.encode_request(ChatRequest(model="m", messages=[Message(role="user", content=[part])]))
    assert caught.value.param == "messages[0].content[0]"


def test_reasoning_and_cache_usage() -> None:
    reply = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}},
                    {"text": "42"},
                ],
            }
        },
        "stopReason": "max_tokens",
        "usage": {
            "inputTokens": 5,
            "outputTokens": 7,
            "totalTokens": 112,
            "cacheReadInputTokens": 60,
            "cacheWriteInputTokens": 40,
        },
        "metrics": {"latencyMs": 1},
    }
    response = bedrock.decode_response(json.dumps(reply).encode(), "m")
    assert (response.choices[0].message.reasoning, response.choices[0].message.content) == ("think", "42")
    assert response.choices[0].finish_reason == "length"
    assert response.usage == Usage(
        prompt_tokens=105, completion_tokens=7, total_tokens=112, cached_tokens=60, cache_write_tokens=40
    )


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons(reason: str, finish: str) -> None:
    assert bedrock.stop_reason_in(reason) == finish


def test_garbage_is_a_malformed_reply() -> None:
    with pytest.raises(bedrock.MalformedReply):
        bedrock.decode_response(b'{"stopReason": "end_turn"}', "m")


# -- streams --


def decode_frames(*frames: bytes) -> list[Any]:
    decoder = bedrock.StreamDecoder("m", request_id="r", created=1)
    return [c for f in Decoder().feed(b"".join(frames)) for c in decoder.feed(f)]


def test_stream_of_text_tool_use_and_usage() -> None:
    chunks = decode_frames(
        event_frame("messageStart", {"role": "assistant"}),
        event_frame("contentBlockDelta", {"delta": {"text": "Let me "}, "contentBlockIndex": 0}),
        event_frame("contentBlockDelta", {"delta": {"text": "check."}, "contentBlockIndex": 0}),
        event_frame("contentBlockStop", {"contentBlockIndex": 0}),
        event_frame(
            "contentBlockStart",
            {"start": {"toolUse": {"toolUseId": "tooluse_1", "name": "top_song"}}, "contentBlockIndex": 1},
        ),
        event_frame("contentBlockDelta", {"delta": {"toolUse": {"input": '{"sign": '}}, "contentBlockIndex": 1}),
        event_frame("contentBlockDelta", {"delta": {"toolUse": {"input": '"WZPZ"}'}}, "contentBlockIndex": 1}),
        event_frame("contentBlockStop", {"contentBlockIndex": 1}),
        event_frame("messageStop", {"stopReason": "tool_use"}),
        event_frame(
            "metadata", {"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}, "metrics": {"latencyMs": 5}}
        ),
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    assert "".join(d.content or "" for d in deltas) == "Let me check."
    calls = [t for d in deltas for t in d.tool_calls or ()]
    assert [(t.index, t.id, t.name, t.arguments) for t in calls] == [
        (0, "tooluse_1", "top_song", ""),
        (0, None, None, '{"sign": '),
        (0, None, None, '"WZPZ"}'),
    ]
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage == Usage(prompt_tokens=9, completion_tokens=4, total_tokens=13)
    assert {c.id for c in chunks} == {"r"}


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("throttlingException", "rate_limited"),
        ("modelStreamErrorException", "server_error"),
        ("validationException", "client_error"),
        ("serviceUnavailableException", "server_error"),
    ],
)
def test_exception_frames_become_the_right_errors(kind: str, error: str) -> None:
    with pytest.raises(bedrock.BedrockStreamError) as caught:
        decode_frames(event_frame("messageStart", {"role": "assistant"}), exception_frame(kind, "went wrong"))
    frame = caught.value
    classified = bedrock.classify_error(frame.status, f"aws {frame}", provider="aws", retry_after=None, body=frame.body)
    assert classified.kind == error and "went wrong" in classified.message


# -- errors --


def classify(status: int, message: str) -> Any:
    body = json.dumps({"message": message}).encode()
    return bedrock.classify_error(status, f"aws returned {status}", provider="aws", retry_after=None, body=body)


def test_error_classes() -> None:
    assert isinstance(classify(424, "The model failed"), UpstreamServerError)
    assert isinstance(classify(400, "Input is too long for requested model."), ContextLengthExceeded)
    assert isinstance(classify(400, "prompt is too long: 201000 tokens > 200000 maximum"), ContextLengthExceeded)
    denied = classify(403, "You don't have access to the model with the specified model ID.")
    assert isinstance(denied, UpstreamClientError) and denied.type == "permission_error"
    assert classify(429, "Too many requests").kind == "rate_limited"
    assert classify(503, "unavailable").retryable


def test_error_message() -> None:
    assert bedrock.error_message(b'{"message":"Malformed input request"}') == "Malformed input request"
    assert bedrock.error_message(b'{"Message":"User is not authorized"}') == "User is not authorized"
    assert bedrock.error_message(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
