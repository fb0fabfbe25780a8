"""The local token estimate used when a backend reports no usage."""

from __future__ import annotations

from llmmux.estimate import estimate_usage, prompt_tokens, text_tokens
from llmmux.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
)


def test_four_bytes_a_token_rounding_up() -> None:
    assert [text_tokens(t) for t in ("", "a", "abcd", "abcde", "x" * 400)] == [0, 1, 1, 2, 100]


def test_multibyte_text_counts_bytes_not_characters() -> None:
    assert text_tokens("日本語のテキスト") == 6  # 8 characters, 24 bytes
    assert text_tokens("привет") == 3  # 6 characters, 12 bytes


def test_prompt_counts_messages_images_tools_and_priming() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(role="system", content="abcdefgh"),  # 3 + 2
            Message(role="user", content=[TextPart("abcd"), ImagePart("data:image/png;base64,xyz")]),  # 3 + 1 + 85
            Message(role="assistant", tool_calls=[ToolCall("id1", "f", "{}")]),  # 3 + 1 + 1
        ],
        tools=[Tool(name="f")],
    )
    tools = text_tokens('[{"name":"f","description":null,"parameters":null,"strict":null}]')
    assert prompt_tokens(request) == 3 + 5 + 89 + 5 + tools


def test_usage_from_a_response_or_from_streamed_characters_is_marked_estimated() -> None:
    request = ChatRequest(model="m", messages=[Message(role="user", content="x" * 40)])
    response = ChatResponse(
        id="r", model="m", created=0, choices=[Choice(message=Message(role="assistant", content="y" * 20))]
    )
    done = estimate_usage(request, response)
    assert (done.prompt_tokens, done.completion_tokens, done.total_tokens, done.estimated) == (16, 5, 21, True)
    streamed = estimate_usage(request, None, output_chars=9)
    assert (streamed.completion_tokens, streamed.estimated) == (3, True)
