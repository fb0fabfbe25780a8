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

# vLLM, llama.cpp and others put the reason only in the message. llama.cpp says "Context
# size has been exceeded." when the slots' shared KV cache fills mid-generation, with a 500;
# llama-cpp-python "Requested tokens (N) exceed context window of M".
_CONTEXT_LENGTH = re.compile(
    r"maximum context length|context[ _]length[ _]exceeded|exceeds? (?:the )?context window"
    r"|exceeds the available context size|context size has been exceeded",
    re.IGNORECASE,
)
# llama-server's (and the MLX engine's) error type for a prompt past the context, whatever the status.
_LLAMA_CONTEXT_TYPE = "exceed_context_size_error"


class _Error(msgspec.Struct):
    message: str = ""
    code: str | int | None = None
    type: str | None = None


class _Body(msgspec.Struct):
    error: _Error | None = None
    message: str = ""  # vLLM's flat `{"object": "error", "message": ...}`


_decoder = msgspec.json.Decoder(_Body)


def _reason(body: bytes) -> tuple[Any, str, str | None]:
    try:
        decoded = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None, "", None
    if decoded.error is not None:
        return decoded.error.code, decoded.error.message, decoded.error.type
    return None, decoded.message, None


def classify_error(
    status: int, message: str, *, provider: str, retry_after: float | None, body: bytes | None
) -> UpstreamError:
    """`classify_status`, with 400s told apart by the body's code or message, and llama.cpp's
    context errors a 400 `ContextLengthExceeded` whatever status it gave them (never a retry)."""
    if body and (status == 400 or status >= 500):
        code, text, kind = _reason(body)
        kwargs: dict[str, Any] = {"provider": provider, "upstream_status": 400, "body": body}
        if (
            kind == _LLAMA_CONTEXT_TYPE
            or _CONTEXT_LENGTH.search(text)
            or (status == 400 and code == "context_length_exceeded")
        ):
            return ContextLengthExceeded(message, **kwargs)
        if status == 400 and code == "content_filter":
            return ContentFiltered(message, **kwargs)
    return classify_status(status, message, provider=provider, retry_after=retry_after, body=body)
