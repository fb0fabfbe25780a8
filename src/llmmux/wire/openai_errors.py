"""OpenAI-format error bodies refined past their status: context-length and content-filter refusals.

OpenAI, Azure OpenAI and the compatible servers answer both with a plain 400; the body's
`code` (or, from servers that leave it out, the message) says which it is, and the
gateway's error tree has a class for each so clients and routing can tell them apart:

    {"error": {"message": "This model's maximum context length is 8192 tokens...",
               "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
    {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content
               management policy...", "param": "prompt", "code": "content_filter", "status": 400, ...}}
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ..errors import (
    ContentFiltered,
    ContextLengthExceeded,
    UpstreamError,
    classify_status,
)

# vLLM, llama.cpp and others put the reason only in the message.
_CONTEXT_LENGTH = re.compile(
    r"maximum context length|context[ _]length[ _]exceeded|exceeds the context window"
    r"|exceeds the available context size",
    re.IGNORECASE,
)


class _Error(msgspec.Struct):
    message: str = ""
    code: str | int | None = None


class _Body(msgspec.Struct):
    error: _Error | None = None
    message: str = ""  # vLLM's flat `{"object": "error", "message": ...}`


_decoder = msgspec.json.Decoder(_Body)


def _reason(body: bytes) -> tuple[Any, str]:
    try:
        decoded = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, ""
    if decoded.error is not None:
        return decoded.error.code, decoded.error.message
    return None, decoded.message


def classify_error(
    status: int, message: str, *, provider: str, retry_after: float | None, body: bytes | None
) -> UpstreamError:
    """`classify_status`, with 400s told apart by the body's code or message."""
    if status == 400 and body:
        code, text = _reason(body)
        kwargs: dict[str, Any] = {"provider": provider, "upstream_status": status, "body": body}
        if code == "content_filter":
            return ContentFiltered(message, **kwargs)
        if code == "context_length_exceeded" or _CONTEXT_LENGTH.search(text):
            return ContextLengthExceeded(message, **kwargs)
    return classify_status(status, message, provider=provider, retry_after=retry_after, body=body)
