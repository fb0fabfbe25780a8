"""llmmux.wire.anthropic: requests, responses and errors, both directions, and round trips."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from llmmux.errors import (
    AllAttemptsFailed,
    Attempt,
    AuthenticationFailed,
    ContextLengthExceeded,
    InvalidRequest,
    LLMMuxError,
    ModelNotFound,
    RateLimited,
    UpstreamClientError,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamTimeout,
)
from llmmux.types import ChatRequest, ChatResponse, Choice, ImagePart, Message, OtherPart, TextPart, ToolCall, Usage
from llmmux.wire import anthropic as wire
from llmmux.wire import openai as openai_wire
from support.anthropic_sdk import parse_message, request_body
from upstreams.anthropic_server import DOCUMENTED_MESSAGE

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def openai_request(**body: Any) -> ChatRequest:
    """A canonical request as an OpenAI client's body decodes (its passthrough dropped: the canonical path)."""
    body.setdefault("model", "chat")
    request = openai_wire.decode_chat_request(body)
    request.passthrough = None
    return request


def outbound(request: ChatRequest, **kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(wire.encode_chat_request(request, "claude-sonnet-4-5", stream=False, **kw))
    return body


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


# -- canonical -> Anthropic requests --


def test_minimal_request_gets_model_and_default_max_tokens() -> None:
    body = outbound(openai_request(messages=[user("Hello")]))
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": wire.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "Hello"}],
    }


def test_client_max_tokens_wins_over_the_provider_default() -> None:
    assert outbound(openai_request(messages=[user("x")]), default_max_tokens=8192)["max_tokens"] == 8192
    assert outbound(openai_request(messages=[user("x")], max_tokens=50), default_max_tokens=8192)["max_tokens"] == 50
    assert outbound(openai_request(messages=[user("x")], max_completion_tokens=70))["max_tokens"] == 70


def test_one_system_message_becomes_the_system_string() -> None:
    body = outbound(openai_request(messages=[{"role": "system", "content": "Be brief."}, user("Hi")]))
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Hi"}]


def test_system_and_developer_messages_are_hoisted_as_blocks_in_order() -> None:
    body = outbound(
        openai_request(
            messages=[
                {"role": "system", "content": "Rule one."},
                user("Hi"),
                {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
                {"role": "assistant", "content": "Hello."},
            ]
        )
    )
    assert body["system"] == [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]


def test_system_images_are_refused_naming_the_part() -> None:
    request = openai_request(
        messages=[
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
            user("Hi"),
        ]
    )
    with pytest.raises(InvalidRequest) as caught:
        outbound(request)
    assert caught.value.param == "messages[0].content[0]"


def test_consecutive_same_role_messages_merge_into_one_turn() -> None:
    body = outbound(
        openai_request(
            messages=[
                user("one"),
                user("two"),
                {"role": "assistant", "content": "three"},
                {"role": "assistant", "content": "four"},
            ]
        )
    )
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}]},
    ]


def test_empty_text_is_dropped_as_anthropic_refuses_it() -> None:
    body = outbound(openai_request(messages=[user("hi"), {"role": "assistant", "content": ""}, user("again")]))
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "again"}]}
    ]


def test_images_become_base64_or_url_sources() -> None:
    body = outbound(
        openai_request(
            messages=[
                user(
                    [
                        {"type": "text", "text": "Compare"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}},
                    ]
                )
            ]
        )
    )
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_pdf_data_urls_become_documents() -> None:
    part = {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
    body = outbound(openai_request(messages=[user([part])]))
    assert body["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"}}
    ]


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("data:image/png,notbase64", "data:image/png;base64"),
        ("data:image/tiff;base64,AAAA", "image/tiff"),
        ("data:image/png;base64,***", "valid base64"),
        ("ftp://example.com/a.png", "http(s)"),
    ],
)
def test_bad_image_urls_are_refused_naming_the_field(url: str, needle: str) -> None:
    request = openai_request(messages=[user("a"), user([{"type": "image_url", "image_url": {"url": url}}])])
    with pytest.raises(InvalidRequest) as caught:
        outbound(request)
    assert needle in caught.value.message
    assert caught.value.param == "messages[1].content[0].image_url"


def test_unsupported_parts_are_refused() -> None:
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    request = openai_request(messages=[user([audio])])
    with pytest.raises(InvalidRequest, match="input_audio") as caught:
        outbound(request)
    assert caught.value.param == "messages[0].content[0]"


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_tools_carry_their_schema_as_input_schema() -> None:
    body = outbound(
        openai_request(
            messages=[user("x")],
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "Weather now",
                        "parameters": WEATHER,
                        "strict": True,
                    },
                },
                {"type": "function", "function": {"name": "now"}},
            ],
        )
    )
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather now", "input_schema": WEATHER, "strict": True},
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, None, {"type": "tool", "name": "get_weather"}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        (None, True, None),
    ],
)
def test_tool_choice_mapping(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    params: dict[str, Any] = {"tools": [{"type": "function", "function": {"name": "get_weather"}}]}
    if choice is not None:
        params["tool_choice"] = choice
    if parallel is not None:
        params["parallel_tool_calls"] = parallel
    assert outbound(openai_request(messages=[user("x")], **params)).get("tool_choice") == expected


@pytest.mark.parametrize("choice", ["sometimes", {"type": "function"}, {"type": "allowed_tools"}])
def test_bad_tool_choice_is_refused(choice: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        outbound(openai_request(messages=[user("x")], tool_choice=choice))
    assert (caught.value.param or "").startswith("tool_choice")


def tool_turns() -> list[dict[str, Any]]:
    """A user question, an assistant calling two tools in parallel, both results, then more text."""
    return [
        user("Weather in Paris and Rome?"),
        {
            "role": "assistant",
            "content": "Checking both.",
            "tool_calls": [
                {
                    "id": "toolu_01A",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "toolu_01B", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_01B", "content": [{"type": "text", "text": "21C"}]},
        user("Thanks!"),
    ]


def test_tool_calls_and_parallel_results_become_blocks_in_one_user_turn() -> None:
    body = outbound(openai_request(messages=tool_turns()))
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": [{"type": "text", "text": "21C"}]},
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]


def test_tool_results_go_first_in_their_user_turn() -> None:
    messages = [*tool_turns()[:2], user("(user interjects)"), *tool_turns()[2:4]]
    content = outbound(openai_request(messages=messages))["messages"][2]["content"]
    assert [b["type"] for b in content] == ["tool_result", "tool_result", "text"]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    messages = tool_turns()
    messages[1]["tool_calls"][1]["function"]["arguments"] = arguments
    with pytest.raises(InvalidRequest) as caught:
        outbound(openai_request(messages=messages))
    assert caught.value.param == "messages[1].tool_calls[1].function.arguments"


def test_tool_message_without_its_call_id_is_refused() -> None:
    request = openai_request(messages=[user("x")])
    request.messages.append(Message(role="tool", content="42"))
    with pytest.raises(InvalidRequest) as caught:
        outbound(request)
    assert caught.value.param == "messages[1].tool_call_id"


def test_sampling_stop_user_and_thinking_are_mapped() -> None:
    thinking = {"type": "enabled", "budget_tokens": 2048}
    body = outbound(
        openai_request(
            messages=[user("x")],
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop="END",
            user="user-42",
            thinking=thinking,
            seed=7,
            logprobs=True,
            metadata={"team": "a"},
        )
    )
    assert body == {
        "model": "claude-sonnet-4-5",
        "max_tokens": wire.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 40,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "thinking": thinking,
    }


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        outbound(openai_request(messages=[user("x")], n=2))
    assert caught.value.param == "n"


def test_stream_flag_follows_the_call() -> None:
    request = openai_request(messages=[user("x")], stream=True)
    assert json.loads(wire.encode_chat_request(request, "c", stream=True))["stream"] is True
    assert "stream" not in json.loads(wire.encode_chat_request(request, "c", stream=False))


def test_anthropic_client_body_passes_through_with_only_model_rewritten() -> None:
    body = {
        "model": "public-claude",
        "max_tokens": 300,
        "provider": "claude",
        "system": [{"type": "text", "text": "Cached rules.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "hi"}],
        "service_tier": "auto",
    }
    request = wire.decode_chat_request(body)
    sent = json.loads(wire.encode_chat_request(request, "claude-sonnet-4-5", stream=False))
    expected = {k: v for k, v in body.items() if k != "provider"}
    assert sent == {**expected, "model": "claude-sonnet-4-5"}
    assert list(sent) == list(expected)  # same key order: nothing re-built


# -- Anthropic -> canonical requests (serving Anthropic clients) --


def test_sdk_built_request_decodes_to_canonical() -> None:
    body = request_body(
        # This SDK release has no sampling parameters of its own; the API still takes them.
        model="claude-public",
        max_tokens=512,
        system="Be brief.",
        extra_body={"temperature": 0.5, "top_k": 10},
        stop_sequences=["###"],
        metadata={"user_id": "u-1"},
        thinking={"type": "enabled", "budget_tokens": 1024},
        tools=[{"name": "get_weather", "description": "Weather", "input_schema": WEATHER}],
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Need weather.", "signature": "sig"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C"},
                    {"type": "text", "text": "And tomorrow?"},
                ],
            },
        ],
    )
    request = wire.decode_chat_request(body)
    assert (request.model, request.max_tokens, request.temperature, request.top_k) == ("claude-public", 512, 0.5, 10)
    assert (request.stop, request.user, request.stream, request.client_wire) == (["###"], "u-1", False, "anthropic")
    assert request.extra == {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "reasoning_effort": "low",
        "parallel_tool_calls": False,
    }
    assert request.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert request.tools is not None and request.tools[0].parameters == WEATHER
    assert request.messages == [
        Message(role="system", content="Be brief."),
        Message(role="user", content=[TextPart("Look:"), ImagePart(url=f"data:image/png;base64,{PNG}")]),
        Message(
            role="assistant",
            content="Checking.",
            reasoning="Need weather.",
            tool_calls=[ToolCall(id="toolu_01A", name="get_weather", arguments='{"city":"Paris"}')],
        ),
        Message(role="tool", tool_call_id="toolu_01A", content="18C"),
        Message(role="user", content="And tomorrow?"),
    ]


def test_unmodelled_blocks_and_server_tools_are_kept_only_in_the_passthrough() -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}
    body = {
        "model": "c",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [document]}],
        "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}],
    }
    request = wire.decode_chat_request(body)
    assert request.messages == [Message(role="user", content=[OtherPart(document)])]
    assert request.tools is None
    assert request.passthrough is not None and request.passthrough.body == body


def test_system_turns_mid_conversation_stay_where_they_stand() -> None:
    body = {
        "model": "c",
        "max_tokens": 9,
        "system": "Top.",
        "messages": [
            user("Hi"),
            {
                "role": "system",
                "content": [{"type": "text", "text": "Now terse.", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "assistant", "content": "Ok."},
            user("More"),
            {"role": "system", "content": "Last rule."},
        ],
    }
    request = wire.decode_chat_request(body)
    assert request.messages == [
        Message(role="system", content="Top."),
        Message(role="user", content="Hi"),
        Message(role="system", content="Now terse."),
        Message(role="assistant", content="Ok."),
        Message(role="user", content="More"),
        Message(role="system", content="Last rule."),
    ]
    assert request.passthrough is not None and request.passthrough.body == body
    assert request.wire_only == ("cache_control",)


@pytest.mark.parametrize(
    ("thinking", "output_config", "effort"),
    [
        ({"type": "adaptive", "display": "omitted"}, {"effort": "medium"}, "medium"),
        ({"type": "adaptive"}, None, "high"),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "enabled", "budget_tokens": 2048}, None, "low"),
        ({"type": "enabled", "budget_tokens": 10000}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, None, "high"),
        ({"type": "disabled"}, {"effort": "low"}, None),
        (None, {"effort": "low"}, "low"),
        (None, None, None),
    ],
)
def test_thinking_and_effort_become_reasoning_effort(
    thinking: dict[str, Any] | None, output_config: dict[str, Any] | None, effort: str | None
) -> None:
    body: dict[str, Any] = {"model": "c", "max_tokens": 9, "messages": [user("x")]}
    if thinking is not None:
        body["thinking"] = thinking
    if output_config is not None:
        body["output_config"] = output_config
    assert wire.decode_chat_request(body).extra.get("reasoning_effort") == effort


def test_beta_fields_server_tools_and_cache_marks_are_wire_only() -> None:
    # The body of Claude Code 2.1's default request, reduced to what matters here.
    body = {
        "model": "c",
        "max_tokens": 9,
        "messages": [user("x")],
        "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "tools": [
            {"name": "Read", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"},
        ],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium", "format": {"type": "json_schema", "schema": {}}},
        "container": "c-1",
    }
    request = wire.decode_chat_request(body)
    assert request.wire_only == (
        "context_management",
        "container",
        "output_config.format",
        "tools[web_search]",
        "cache_control",
    )
    assert wire.decode_chat_request({"model": "c", "max_tokens": 9, "messages": [user("x")]}).wire_only == ()


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({"model": "c", "messages": [user("x")]}, "max_tokens", "'max_tokens' is required"),
        ({"model": "c", "max_tokens": "10", "messages": [user("x")]}, "max_tokens", "Expected `int`"),
        ({"model": "c", "max_tokens": 0, "messages": [user("x")]}, "max_tokens", "at least 1"),
        ({"model": "c", "max_tokens": 9, "messages": []}, "messages", "at least one"),
        ({"model": "c", "max_tokens": 9, "messages": [{"content": "x"}]}, "messages[0].role", "is required"),
        (
            {"model": "c", "max_tokens": 9, "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
            "'user', 'assistant' or 'system'",
        ),
        (
            {
                "model": "c",
                "max_tokens": 9,
                "messages": [user("x"), {"role": "system", "content": [{"type": "image"}]}],
            },
            "messages[1].content[0]",
            "text blocks",
        ),
        ({"model": "c", "max_tokens": 9, "messages": [user([{"text": "x"}])]}, "messages[0].content[0].type", "type"),
        (
            {"model": "c", "max_tokens": 9, "messages": [user([{"type": "text", "text": 5}])]},
            "messages[0].content[0].text",
            "string",
        ),
        (
            {
                "model": "c",
                "max_tokens": 9,
                "messages": [user([{"type": "image", "source": {"type": "file", "file_id": "f"}}])],
            },
            "messages[0].content[0].source.type",
            "'file'",
        ),
        (
            {
                "model": "c",
                "max_tokens": 9,
                "messages": [user([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])],
            },
            "messages[0].content[0].type",
            "user message",
        ),
        (
            {
                "model": "c",
                "max_tokens": 9,
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}
                ],
            },
            "messages[0].content[0].input",
            "object",
        ),
        (
            {"model": "c", "max_tokens": 9, "messages": [user([{"type": "tool_result", "content": "x"}])]},
            "messages[0].content[0].tool_use_id",
            "tool_use_id",
        ),
        ({"model": "c", "max_tokens": 9, "system": [{"type": "image"}], "messages": [user("x")]}, "system[0]", "text"),
        (
            {"model": "c", "max_tokens": 9, "tool_choice": {"type": "tool"}, "messages": [user("x")]},
            "tool_choice.name",
            "name",
        ),
        (
            {"model": "c", "max_tokens": 9, "tool_choice": {"type": "maybe"}, "messages": [user("x")]},
            "tool_choice.type",
            "maybe",
        ),
        ({"model": "c", "max_tokens": 9, "stop_sequences": "END", "messages": [user("x")]}, "stop_sequences", "array"),
    ],
)
def test_invalid_anthropic_requests_name_the_field(body: dict[str, Any], param: str, needle: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        wire.decode_chat_request(body)
    assert caught.value.param == param
    assert needle in caught.value.message


def test_non_object_body_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        wire.decode_chat_request([1, 2])


# -- Anthropic -> canonical responses --


def test_documented_message_decodes() -> None:
    response = wire.decode_chat_response(DOCUMENTED_MESSAGE, created=1700000000)
    assert (response.id, response.model, response.created) == (
        "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "claude-sonnet-4-5-20250929",
        1700000000,
    )
    assert response.choices == [
        Choice(message=Message(role="assistant", content="Hi! My name is Claude."), finish_reason="stop")
    ]
    assert response.usage == Usage(prompt_tokens=2095, completion_tokens=503, total_tokens=2598)
    assert (response.raw, response.raw_wire) == (DOCUMENTED_MESSAGE, "anthropic")


def test_blocks_usage_and_cache_counts_decode() -> None:
    body = msgspec.json.encode(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
                {"type": "text", "text": "Calling "},
                {"type": "text", "text": "the tool."},
                {"type": "redacted_thinking", "data": "xyz"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 10,
                "output_tokens": 30,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 50,
                "output_tokens_details": {"thinking_tokens": 12},
            },
        }
    )
    response = wire.decode_chat_response(body)
    assert response.choices[0] == Choice(
        message=Message(
            role="assistant",
            content="Calling the tool.",
            reasoning="Let me see.",
            tool_calls=[ToolCall(id="toolu_1", name="get_weather", arguments='{"city":"Paris"}')],
        ),
        finish_reason="tool_calls",
    )
    # prompt_tokens counts every input token, cached or not, as OpenAI does.
    assert response.usage == Usage(
        prompt_tokens=160,
        completion_tokens=30,
        total_tokens=190,
        cached_tokens=100,
        cache_write_tokens=50,
        reasoning_tokens=12,
    )


def test_tool_only_reply_has_no_content() -> None:
    body = (
        b'{"id":"m","type":"message","model":"c","content":[{"type":"tool_use","id":"t","name":"f","input":{}}],'
        b'"stop_reason":"tool_use","usage":{"input_tokens":1,"output_tokens":1}}'
    )
    message = wire.decode_chat_response(body).choices[0].message
    assert message.content is None
    assert message.tool_calls == [ToolCall(id="t", name="f", arguments="{}")]


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
        ("some_future_reason", "stop"),
        (None, None),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop: str | None, finish: str | None) -> None:
    assert wire.finish_reason(stop) == finish


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"type":"error","error":{"type":"api_error","message":"x"}}',
        b'{"type":"message","content":"oops"}',
    ],
)
def test_malformed_messages_are_reported(data: bytes) -> None:
    with pytest.raises(wire.MalformedReply):
        wire.decode_chat_response(data)


# -- canonical -> Anthropic responses (serving Anthropic clients) --


def canonical_response(**message: Any) -> ChatResponse:
    return ChatResponse(
        id="chatcmpl-abc",
        model="gpt-4o",
        created=1,
        choices=[Choice(message=Message(role="assistant", **message), finish_reason="tool_calls")],
        usage=Usage(prompt_tokens=120, completion_tokens=30, total_tokens=150, cached_tokens=100),
    )


def test_canonical_response_is_a_message_the_sdk_reads() -> None:
    response = canonical_response(
        content="Checking.",
        reasoning="Think first.",
        tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city":"Rome"}')],
    )
    message = parse_message(wire.encode_chat_response(response, "claude-public"))
    assert (message.id, message.model, message.stop_reason) == ("msg_chatcmpl-abc", "claude-public", "tool_use")
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message.content[0].thinking == "Think first."  # type: ignore[union-attr]
    assert message.content[1].text == "Checking."  # type: ignore[union-attr]
    assert (message.content[2].id, message.content[2].input) == ("call_1", {"city": "Rome"})  # type: ignore[union-attr]
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (20, 100, 30)


def test_broken_tool_arguments_are_kept_not_lost() -> None:
    response = canonical_response(tool_calls=[ToolCall(id="c", name="f", arguments='{"city": "Ro')])
    message = parse_message(wire.encode_chat_response(response, "p"))
    assert message.content[0].input == {"arguments": '{"city": "Ro'}  # type: ignore[union-attr]


def test_anthropic_upstream_reply_passes_through_with_public_model() -> None:
    response = wire.decode_chat_response(DOCUMENTED_MESSAGE)
    out = wire.encode_chat_response(response, "claude-public")
    assert out == DOCUMENTED_MESSAGE.replace(b'"claude-sonnet-4-5-20250929"', b'"claude-public"')


# -- errors --


@pytest.mark.parametrize(
    ("status", "body", "cls", "retryable"),
    [
        (
            529,
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            UpstreamServerError,
            True,
        ),
        (
            500,
            b'{"type":"error","error":{"type":"api_error","message":"Internal server error"}}',
            UpstreamServerError,
            True,
        ),
        (429, b'{"type":"error","error":{"type":"rate_limit_error","message":"Slow down"}}', UpstreamRateLimited, True),
        (
            401,
            b'{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}',
            UpstreamClientError,
            False,
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 208656 tokens > '
            b'200000 maximum"}}',
            ContextLengthExceeded,
            False,
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed '
            b'context limit: 178959 + 64000 > 200000, decrease input length or `max_tokens` and try again"}}',
            ContextLengthExceeded,
            False,
        ),
        (
            400,
            b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}',
            UpstreamClientError,
            False,
        ),
    ],
)
def test_upstream_errors_are_classified(status: int, body: bytes, cls: type, retryable: bool) -> None:
    message = wire.error_message(body)
    error = wire.classify_error(status, message, provider="claude", retry_after=3.0, body=body)
    assert type(error) is cls
    assert (error.retryable, error.upstream_status, error.provider) == (retryable, status, "claude")
    assert message.split(": ", 1)[0] == json.loads(body)["error"]["type"]


def test_context_length_error_is_a_client_error_with_its_code() -> None:
    body = (
        b'{"type":"error","error":{"type":"invalid_request_error",'
        b'"message":"prompt is too long: 9 tokens > 5 maximum"}}'
    )
    error = wire.classify_error(400, "m", provider="p", retry_after=None, body=body)
    assert isinstance(error, UpstreamClientError)
    assert (error.status, error.type) == (400, "invalid_request_error")
    assert error.code == error.kind == "context_length_exceeded"


def test_error_message_of_a_non_anthropic_body() -> None:
    assert wire.error_message(b"<html>Bad gateway</html>") == "<html>Bad gateway</html>"
    assert wire.error_message(b"") == "empty body"


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (InvalidRequest("bad"), 400, "invalid_request_error"),
        (ModelNotFound("nope"), 404, "not_found_error"),
        (AuthenticationFailed("who?"), 401, "authentication_error"),
        (RateLimited("slow"), 429, "rate_limit_error"),
        (AllAttemptsFailed("m", [Attempt("p", "m", UpstreamRateLimited("busy"), 1.0)]), 503, "overloaded_error"),
        (AllAttemptsFailed("m", [Attempt("p", "m", UpstreamTimeout("slow"), 1.0)]), 504, "timeout_error"),
        (AllAttemptsFailed("m", [Attempt("p", "m", UpstreamServerError("boom"), 1.0)]), 502, "api_error"),
        (LLMMuxError("internal"), 500, "api_error"),
    ],
)
def test_gateway_errors_render_in_anthropic_shape(error: LLMMuxError, status: int, kind: str) -> None:
    got_status, body = wire.render_error(error)
    assert got_status == status
    assert json.loads(body) == {"type": "error", "error": {"type": kind, "message": error.message}}


def test_an_anthropic_upstreams_own_4xx_body_passes_through() -> None:
    body = b'{"type": "error", "error": {"type": "not_found_error", "message": "model: nope"}, "request_id": "req_1"}'
    error = wire.classify_error(404, "m", provider="p", retry_after=None, body=body)
    assert wire.render_error(error) == (404, body)


# -- round trips --


def test_anthropic_request_round_trips_through_canonical() -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "Be brief.",
        "temperature": 0.3,
        "stop_sequences": ["###"],
        "tools": [{"name": "get_weather", "input_schema": WEATHER}],
        "tool_choice": {"type": "any"},
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather?"},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/sky.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "3C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "20C"},
                    {"type": "text", "text": "Which is warmer?"},
                ],
            },
        ],
    }
    request = wire.decode_chat_request(body)
    request.passthrough = None  # force the canonical path
    assert json.loads(wire.encode_chat_request(request, "claude-sonnet-4-5", stream=False)) == body


def test_canonical_request_round_trips_through_anthropic() -> None:
    request = openai_request(
        messages=[{"role": "system", "content": "Be brief."}, *tool_turns()],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}],
        tool_choice="auto",
        max_tokens=99,
        temperature=0.1,
        stop=["END"],
    )
    back = wire.decode_chat_request(outbound(request))
    assert back.messages == [
        Message(role="system", content="Be brief."),
        Message(role="user", content="Weather in Paris and Rome?"),
        Message(
            role="assistant",
            content="Checking both.",
            tool_calls=[
                ToolCall(id="toolu_01A", name="get_weather", arguments='{"city":"Paris"}'),
                ToolCall(id="toolu_01B", name="get_weather", arguments="{}"),
            ],
        ),
        Message(role="tool", tool_call_id="toolu_01A", content="18C"),
        Message(role="tool", tool_call_id="toolu_01B", content="21C"),
        Message(role="user", content="Thanks!"),
    ]
    assert (back.tool_choice, back.max_tokens, back.temperature, back.stop) == ("auto", 99, 0.1, ["END"])
    assert back.tools == request.tools


def test_response_round_trips_through_anthropic() -> None:
    call = ToolCall(id="toolu_9", name="f", arguments='{"a":1}')
    response = canonical_response(content="Checking.", tool_calls=[call])
    back = wire.decode_chat_response(wire.encode_chat_response(response, "claude-public"))
    assert back.choices == response.choices
    assert back.usage == response.usage


def test_effort_and_parallel_calls_reach_an_openai_upstream_other_anthropic_fields_do_not() -> None:
    body = {
        "model": "c",
        "max_tokens": 9,
        "messages": [user("x")],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "low"},
        "context_management": {"edits": []},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    }
    sent = json.loads(openai_wire.encode_chat_request(wire.decode_chat_request(body), "gpt", stream=False))
    assert (sent["reasoning_effort"], sent["parallel_tool_calls"]) == ("low", False)
    assert not {"thinking", "output_config", "context_management"} & set(sent)
