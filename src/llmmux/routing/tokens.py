"""A local estimate of a request's prompt tokens: no tokenizer, nothing downloaded.

BPE tokenizers (OpenAI's, Llama's, Qwen's) average about four characters per token on
English and code; scripts they split finely (CJK and the like) cost about one token per
character. Each message adds a few tokens of framing, as OpenAI's cookbook counts them;
an image counts as a high-detail tile set; tool schemas count by their JSON length. The
estimate runs in C-speed string operations, so it is cheap even for long prompts.
"""

from __future__ import annotations

import msgspec

from ..types import ChatRequest, EmbeddingRequest, ImagePart, Message, OtherPart, TextPart

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
IMAGE_TOKENS = 765  # OpenAI's count for a 1024x1024 image at high detail
LOW_DETAIL_IMAGE_TOKENS = 85
TOOL_OVERHEAD = 8


def text_tokens(text: str) -> int:
    """About four ASCII characters per token; a wide (multi-byte) character is about one."""
    n = len(text)
    if text.isascii():
        return -(-n // CHARS_PER_TOKEN)
    # UTF-8 spends 2 extra bytes on a CJK character: half the extra bytes counts them.
    wide = (len(text.encode("utf-8", "surrogatepass")) - n) // 2
    return -(-(n - wide) // CHARS_PER_TOKEN) + wide


def message_tokens(message: Message) -> int:
    tokens = MESSAGE_OVERHEAD
    content = message.content
    if isinstance(content, str):
        tokens += text_tokens(content)
    elif content:
        for part in content:
            if isinstance(part, TextPart):
                tokens += text_tokens(part.text)
            elif isinstance(part, ImagePart):
                tokens += LOW_DETAIL_IMAGE_TOKENS if part.detail == "low" else IMAGE_TOKENS
            elif isinstance(part, OtherPart):
                tokens += len(msgspec.json.encode(part.data)) // CHARS_PER_TOKEN
    if message.tool_calls:
        for call in message.tool_calls:
            tokens += text_tokens(call.name) + text_tokens(call.arguments) + TOOL_OVERHEAD
    if message.name:
        tokens += 1
    return tokens


def estimate_prompt_tokens(request: ChatRequest) -> int:
    """The estimated prompt size of `request`, in tokens."""
    tokens = REPLY_PRIMING + sum(message_tokens(m) for m in request.messages)
    for tool in request.tools or ():
        schema = msgspec.json.encode(tool.parameters) if tool.parameters else b""
        tokens += (
            TOOL_OVERHEAD
            + text_tokens(tool.name)
            + text_tokens(tool.description or "")
            + len(schema) // CHARS_PER_TOKEN
        )
    return tokens


def longest_input_tokens(request: EmbeddingRequest) -> int:
    """The estimated size of an embedding request's longest input: each must fit the window."""
    sizes = [text_tokens(i) if isinstance(i, str) else len(i) for i in request.inputs]
    return max(sizes, default=0)
