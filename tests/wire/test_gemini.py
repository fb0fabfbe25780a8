"""Gemini wire translation: recorded replies from Google's API, each direction, and a round trip.

The recorded bodies are Gemini API traffic captured in google/adk-go's test data
(`agent/llmagent/testdata/*.httprr`), replayed byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from llmmux.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    UpstreamClientError,
    UpstreamRateLimited,
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
from llmmux.wire import gemini
from llmmux.wire.sse import SSEParser
from wire.gemini_reverse import StreamEncoder, decode_request, encode_response

# POST .../models/gemini-2.0-flash:generateContent, the reply to "what is the sum of 1 + 2?" with a `sum` tool.
RECORDED_CALL = b"""{
  "candidates": [
    {
      "content": {
        "parts": [
          {
            "functionCall": {
              "name": "sum",
              "args": {
                "a": 1,
                "b": 2
              }
            }
          }
        ],
        "role": "model"
      },
      "finishReason": "STOP",
      "avgLogprobs": -0.0020935086533427237
    }
  ],
  "usageMetadata": {
    "promptTokenCount": 28,
    "candidatesTokenCount": 5,
    "totalTokenCount": 33,
    "promptTokensDetails": [
      {
        "modality": "TEXT",
        "tokenCount": 28
      }
    ],
    "candidatesTokensDetails": [
      {
        "modality": "TEXT",
        "tokenCount": 5
      }
    ]
  },
  "modelVersion": "gemini-2.0-flash",
  "responseId": "pAy7aJbkIe2m1MkPgbz0iAo"
}
"""

# The request that produced the recorded follow-up answer, as adk-go sent it.
RECORDED_FOLLOW_UP_REQUEST = {
    "contents": [
        {"parts": [{"text": "what is the sum of 1 + 2?"}], "role": "user"},
        {"parts": [{"functionCall": {"args": {"a": 1, "b": 2}, "name": "sum"}}], "role": "model"},
        {"parts": [{"functionResponse": {"name": "sum", "response": {"sum": 3}}}], "role": "user"},
    ],
    "systemInstruction": {"parts": [{"text": "output ONLY the result computed by the provided function"}]},
    "tools": [
        {
            "functionDeclarations": [
                {
                    "description": "computes the sum of two numbers",
                    "name": "sum",
                    "parametersJsonSchema": {
                        "additionalProperties": False,
                        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                        "required": ["a", "b"],
                        "type": "object",
                    },
                }
            ]
        }
    ],
}

# POST .../models/gemini-2.5-flash:streamGenerateContent?alt=sse with thinking on (events 1, 4 and 18 of 18).
RECORDED_STREAM = (
    b'data: {"candidates": [{"content": {"parts": [{"text": "**Calculating Prime Sum**\\n\\nI\'ve determined the task '
    b'involves summing the first 50 primes.\\n\\n\\n","thought": true}],"role": "model"},"index": 0}],"usageMetadata": '
    b'{"promptTokenCount": 28,"totalTokenCount": 98,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 28}],'
    b'"thoughtsTokenCount": 70},"modelVersion": "gemini-2.5-flash","responseId": "WEXbaMnpF7iPjMcP27mckQE"}\n\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "To find the sum of the first 50 prime numbers, we first '
    b'need to list them and then add them up.\\n\\n"}],"role": "model"},"index": 0}],"usageMetadata": '
    b'{"promptTokenCount": 28,"candidatesTokenCount": 47,"totalTokenCount": 1249,"promptTokensDetails": '
    b'[{"modality": "TEXT","tokenCount": 28}],"thoughtsTokenCount": 1174},"modelVersion": "gemini-2.5-flash",'
    b'"responseId": "WEXbaMnpF7iPjMcP27mckQE"}\n\n'
    b'data: {"candidates": [{"content": {"parts": [{"text": "5309**\\n\\nThe sum of the first 50 prime numbers is 5309."}],'
    b'"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 28,'
    b'"candidatesTokenCount": 643,"totalTokenCount": 1845,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 28}],'
    b'"thoughtsTokenCount": 1174},"modelVersion": "gemini-2.5-flash","responseId": "WEXbaMnpF7iPjMcP27mckQE"}\n\n'
)

# Documented error bodies (Google's API error model).
BAD_KEY = (
    b'{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": '
    b'"INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": '
    b'"API_KEY_INVALID", "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}]}}'
)
QUOTA = (
    b'{"error": {"code": 429, "message": "You exceeded your current quota... Please retry in 53.016342224s.", '
    b'"status": "RESOURCE_EXHAUSTED", "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", '
    b'"retryDelay": "53s"}]}}'
)
TOO_LONG = (
    b'{"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of '
    b'tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}'
)


def classify(status: int, body: bytes, retry_after: float | None = None) -> Any:
    return gemini.classify_error(status, f"gem returned {status}", provider="gem", retry_after=retry_after, body=body)


# -- replies --


def test_recorded_function_call_reply() -> None:
    response = gemini.decode_response(RECORDED_CALL, "gemini-2.0-flash", created=7)
    [choice] = response.choices
    assert (response.id, response.model, response.created) == ("pAy7aJbkIe2m1MkPgbz0iAo", "gemini-2.0-flash", 7)
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls == [
        ToolCall(id="call_pAy7aJbkIe2m1MkPgbz0iAo_0_0", name="sum", arguments='{"a":1,"b":2}')
    ]
    assert response.usage == Usage(prompt_tokens=28, completion_tokens=5, total_tokens=33)


def test_usage_counts_thoughts_as_reasoning_inside_completion_and_cached_tokens() -> None:
    body = (
        b'{"candidates": [{"content": {"parts": [{"text": "hm", "thought": true}, {"text": "4"}], "role": "model"},'
        b' "finishReason": "MAX_TOKENS"}], "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 1,'
        b' "totalTokenCount": 171, "cachedContentTokenCount": 64, "thoughtsTokenCount": 60,'
        b' "toolUsePromptTokenCount": 10}}'
    )
    response = gemini.decode_response(body, "m")
    message = response.choices[0].message
    assert (message.content, message.reasoning, response.choices[0].finish_reason) == ("4", "hm", "length")
    assert response.usage == Usage(
        prompt_tokens=110, completion_tokens=61, total_tokens=171, cached_tokens=64, reasoning_tokens=60
    )


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"])
def test_safety_finish_reasons_become_content_filter(reason: str) -> None:
    body = json.dumps({"candidates": [{"content": {"parts": [], "role": "model"}, "finishReason": reason}]})
    assert gemini.decode_response(body.encode(), "m").choices[0].finish_reason == "content_filter"


def test_a_blocked_prompt_is_an_empty_content_filtered_answer() -> None:
    body = (
        b'{"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT",'
        b' "probability": "HIGH"}]}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}'
    )
    response = gemini.decode_response(body, "m")
    assert [(c.message.content, c.finish_reason) for c in response.choices] == [(None, "content_filter")]
    assert response.usage is not None and response.usage.prompt_tokens == 9


def test_an_error_object_in_a_200_is_an_error() -> None:
    with pytest.raises(gemini.GeminiError) as caught:
        gemini.decode_response(b'{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}', "m")
    assert caught.value.status == 503


def test_garbage_is_a_malformed_reply() -> None:
    with pytest.raises(gemini.MalformedReply):
        gemini.decode_response(b'{"candidates": [', "m")
    with pytest.raises(gemini.MalformedReply):
        gemini.decode_response(b"{}", "m")


# -- streams --


def decode_stream(data: bytes) -> list[Any]:
    decoder = gemini.StreamDecoder("asked-for", created=1)
    chunks = [c for _, payload in SSEParser().feed(data) for c in decoder.feed(payload)]
    closing = decoder.finish()
    return chunks + ([closing] if closing else [])


def test_recorded_stream_with_thoughts() -> None:
    chunks = decode_stream(RECORDED_STREAM)
    deltas = [c.choices[0].delta for c in chunks[:-1]]
    assert [d.role for d in deltas] == ["assistant", None, None]
    assert deltas[0].reasoning is not None and deltas[0].reasoning.startswith("**Calculating Prime Sum**")
    assert deltas[0].content is None
    assert deltas[2].content == "5309**\n\nThe sum of the first 50 prime numbers is 5309."
    assert [c.choices[0].finish_reason for c in chunks[:-1]] == [None, None, "stop"]
    assert {c.id for c in chunks} == {"WEXbaMnpF7iPjMcP27mckQE"} and {c.model for c in chunks} == {"gemini-2.5-flash"}
    closing = chunks[-1]
    assert closing.choices == [] and closing.usage == Usage(
        prompt_tokens=28, completion_tokens=1817, total_tokens=1845, reasoning_tokens=1174
    )


def test_streamed_function_calls_get_consecutive_indexes_and_signatures_ride_in_the_id() -> None:
    events = [
        {
            "candidates": [
                {
                    "content": {
                        "parts": [{"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2lnMQ=="}],
                        "role": "model",
                    }
                }
            ],
            "responseId": "r",
        },
        {
            "candidates": [
                {
                    "content": {"parts": [{"functionCall": {"name": "b", "args": {"x": 1}}}], "role": "model"},
                    "finishReason": "STOP",
                }
            ],
            "responseId": "r",
        },
    ]
    chunks = decode_stream(b"".join(b"data: " + json.dumps(e).encode() + b"\r\n\r\n" for e in events))
    calls = [t for c in chunks for t in c.choices[0].delta.tool_calls or ()]
    assert [(t.index, t.id, t.name, t.arguments) for t in calls] == [
        (0, "call_r_0_0__thought__c2lnMQ==", "a", "{}"),
        (1, "call_r_0_1", "b", '{"x":1}'),
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_stream_that_never_finishes_is_not_marked_finished() -> None:
    decoder = gemini.StreamDecoder("m")
    decoder.feed(b'{"candidates": [{"content": {"parts": [{"text": "partial"}], "role": "model"}}]}')
    assert not decoder.finished


# -- requests --


def tool_turns() -> list[Message]:
    return [
        Message(role="system", content="output ONLY the result computed by the provided function"),
        Message(role="user", content="what is the sum of 1 + 2?"),
        Message(role="assistant", tool_calls=[ToolCall(id="call_0", name="sum", arguments='{"a": 1, "b": 2}')]),
        Message(role="tool", tool_call_id="call_0", content='{"sum": 3}'),
    ]


SUM_TOOL = Tool(
    name="sum",
    description="computes the sum of two numbers",
    parameters={
        "additionalProperties": False,
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "type": "object",
    },
)


def test_request_matches_the_recorded_follow_up_field_by_field() -> None:
    body = json.loads(gemini.encode_request(ChatRequest(model="m", messages=tool_turns(), tools=[SUM_TOOL])))
    assert body == RECORDED_FOLLOW_UP_REQUEST


def test_generation_config_and_tool_choice() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message(role="user", content="hi")],
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        max_tokens=100,
        stop=["END"],
        n=2,
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.3,
        tools=[SUM_TOOL],
        tool_choice={"type": "function", "function": {"name": "sum"}},
        response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
        extra={
            "reasoning_effort": "low",
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
            "logit_bias": {},
        },
    )
    body = json.loads(gemini.encode_request(request))
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 100,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "seed": 7,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.3,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["sum"]}}
    assert body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    assert "logit_bias" not in body


@pytest.mark.parametrize(("choice", "mode"), [("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")])
def test_tool_choice_modes(choice: str, mode: str) -> None:
    body = json.loads(
        gemini.encode_request(ChatRequest(model="m", messages=[Message(role="user", content="x")], tool_choice=choice))
    )
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_images_audio_and_json_mode() -> None:
    parts = [
        TextPart("what is this"),
        ImagePart(url="data:image/png;base64,iVBORw0KGgo="),
        ImagePart(url="https://example.com/cat.webp"),
        OtherPart({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}),
    ]
    request = ChatRequest(
        model="m", messages=[Message(role="user", content=parts)], response_format={"type": "json_object"}
    )
    body = json.loads(gemini.encode_request(request))
    assert body["contents"][0]["parts"] == [
        {"text": "what is this"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


def test_consecutive_turns_of_one_role_merge_and_parallel_results_share_a_turn() -> None:
    messages = [
        Message(role="user", content="a"),
        Message(role="user", content="b"),
        Message(
            role="assistant",
            content="calling",
            tool_calls=[
                ToolCall(id="1", name="f", arguments="{}"),
                ToolCall(id="2__thought__c2ln", name="g", arguments="{}"),
            ],
        ),
        Message(role="tool", tool_call_id="1", content="plain text"),
        Message(role="tool", tool_call_id="2__thought__c2ln", content="[1, 2]"),
    ]
    contents = json.loads(gemini.encode_request(ChatRequest(model="m", messages=messages)))["contents"]
    assert contents == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {
            "role": "model",
            "parts": [
                {"text": "calling"},
                {"functionCall": {"name": "f", "args": {}}},
                {"functionCall": {"name": "g", "args": {}}, "thoughtSignature": "c2ln"},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "f", "response": {"output": "plain text"}}},
                {"functionResponse": {"name": "g", "response": {"output": [1, 2]}}},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([Message(role="tool", tool_call_id="nope", content="x")], "messages[0]"),
        (
            [Message(role="assistant", tool_calls=[ToolCall(id="1", name="f", arguments="{oops")])],
            "messages[0].tool_calls",
        ),
        ([Message(role="user", content=[OtherPart({"type": "refusal"})])], "messages[0].content"),
    ],
    ids=["orphan-tool-result", "bad-arguments", "unknown-part"],
)
def test_requests_gemini_cannot_take_are_a_400(messages: list[Message], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        gemini.encode_request(ChatRequest(model="m", messages=messages))
    assert caught.value.param == param


def test_model_paths() -> None:
    assert gemini.model_path("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert gemini.model_path("tunedModels/mine-123") == "tunedModels/mine-123"


# -- round trips --


def test_request_round_trip() -> None:
    original = ChatRequest(
        model="m",
        messages=[
            Message(role="system", content="be brief"),
            Message(role="user", content=[TextPart("look"), ImagePart(url="data:image/png;base64,AAAA")]),
            Message(
                role="assistant",
                content="ok",
                tool_calls=[ToolCall(id="call_0__thought__c2ln", name="sum", arguments='{"a":1}')],
            ),
            Message(role="tool", tool_call_id="call_0__thought__c2ln", name="sum", content='{"sum":3}'),
            Message(role="user", content="thanks"),
        ],
        temperature=0.5,
        top_k=3,
        max_tokens=20,
        stop=["x"],
        tools=[SUM_TOOL],
        tool_choice="required",
        response_format={"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}},
    )
    body = msgspec.json.decode(gemini.encode_request(original))
    again = decode_request(body, "m")
    for field in ("messages", "temperature", "top_k", "max_tokens", "stop", "tools", "tool_choice", "response_format"):
        assert getattr(again, field) == getattr(original, field), field
    assert json.loads(gemini.encode_request(again)) == body


def test_response_round_trip() -> None:
    response = gemini.decode_response(RECORDED_CALL, "gemini-2.0-flash", created=7)
    again = gemini.decode_response(encode_response(response, "public"), "x", created=7)
    assert again.choices == response.choices and again.usage == response.usage and again.model == "public"


def test_stream_round_trip_holds_tool_arguments_until_the_choice_finishes() -> None:
    chunks = decode_stream(RECORDED_STREAM)
    encoder = StreamEncoder("public")
    events = [e for c in chunks for e in encoder.feed(c)]
    again = decode_stream(b"".join(b"data: " + e + b"\r\n\r\n" for e in events))
    assert [c.choices for c in again] == [c.choices for c in chunks]
    assert again[-1].usage == chunks[-1].usage


# -- errors --


def test_a_bad_key_is_an_authentication_failure() -> None:
    error = classify(400, BAD_KEY)
    assert isinstance(error, UpstreamClientError) and (error.status, error.type) == (401, "authentication_error")
    assert gemini.error_message(BAD_KEY) == "INVALID_ARGUMENT: API key not valid. Please pass a valid API key."


def test_quota_errors_wait_as_retry_info_says_unless_a_header_said_otherwise() -> None:
    error = classify(429, QUOTA)
    assert isinstance(error, UpstreamRateLimited) and error.retry_after == 53.0
    assert classify(429, QUOTA, retry_after=2.0).retry_after == 2.0


def test_an_over_long_prompt_is_context_length_exceeded() -> None:
    assert isinstance(classify(400, TOO_LONG), ContextLengthExceeded)


def test_errors_wrapped_in_an_array_are_read_too() -> None:
    assert gemini.error_message(b"[" + QUOTA + b"]").startswith("RESOURCE_EXHAUSTED: You exceeded")


def test_gateway_errors_in_gemini_shape() -> None:
    assert json.loads(gemini.encode_error(InvalidRequest("bad"))) == {
        "error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}
    }
