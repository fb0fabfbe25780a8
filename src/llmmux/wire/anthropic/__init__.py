"""Anthropic's Messages API: wire types and translation to and from the canonical types.

Pure translation, no I/O, in both directions: calling Claude (`encode_chat_request`,
`decode_chat_response`, `StreamTranslator`, `classify_error`) and serving clients that speak
Anthropic (`decode_chat_request`, `encode_chat_response`, `StreamEncoder`, `encode_error`).
When both ends speak it, the client's body and the upstream's bytes travel unchanged except
for `model`. One module per concern, as the format is larger than OpenAI's:

    common        constants, stop reasons, usage arithmetic
    request_out   canonical request -> Anthropic body
    request_in    Anthropic body -> canonical request (validated)
    response      Anthropic message <-> canonical response
    stream_in     Anthropic events -> canonical chunks (`StreamTranslator`)
    stream_out    canonical chunks -> Anthropic events (`StreamEncoder`)
    errors        Anthropic error bodies and events <-> the error tree
"""

from .. import MalformedReply
from .common import API_VERSION, DEFAULT_MAX_TOKENS, WIRE, finish_reason, stop_reason
from .errors import classify_error, encode_error, error_message, error_type, render_error, stream_error
from .request_in import decode_chat_request
from .request_out import encode_chat_request, request_body
from .response import decode_chat_response, encode_chat_response
from .stream_in import StreamTranslator
from .stream_out import StreamEncoder

__all__ = [
    "API_VERSION",
    "DEFAULT_MAX_TOKENS",
    "WIRE",
    "MalformedReply",
    "StreamEncoder",
    "StreamTranslator",
    "classify_error",
    "decode_chat_request",
    "decode_chat_response",
    "encode_chat_request",
    "encode_chat_response",
    "encode_error",
    "error_message",
    "error_type",
    "finish_reason",
    "render_error",
    "request_body",
    "stop_reason",
    "stream_error",
]
