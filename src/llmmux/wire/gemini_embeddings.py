"""Gemini's `models/{model}:batchEmbedContents`: embedding requests and replies, translated.

Pure translation, no I/O. One `EmbedContentRequest` per input text, each naming the
model again (Gemini requires it to match the URL's); `dimensions` becomes
`outputDimensionality`. Gemini reports no token count for embeddings, so usage is
estimated locally and marked so.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import InvalidRequest
from ..estimate import embedding_usage
from ..types import EmbeddingRequest, EmbeddingResponse
from . import MalformedReply
from .gemini import model_path

__all__ = ["BATCH_LIMIT", "decode_embed_response", "encode_embed_request"]

BATCH_LIMIT = 100  # requests per batchEmbedContents call, Gemini's documented maximum
# Request fields with no canonical form that Gemini reads per input, passed through from `extra`.
PASSTHROUGH = ("taskType", "title")


class _Embedding(msgspec.Struct):
    values: list[float]


class _Reply(msgspec.Struct):
    embeddings: list[_Embedding]


def encode_embed_request(request: EmbeddingRequest, model: str, inputs: list[str] | list[list[int]]) -> bytes:
    """A batchEmbedContents body for `inputs`; Gemini embeds text, so token arrays are refused."""
    texts = text_inputs(inputs)
    name = model_path(model)
    common: dict[str, Any] = {k: request.extra[k] for k in PASSTHROUGH if k in request.extra}
    if request.dimensions is not None:
        common["outputDimensionality"] = request.dimensions
    requests = [{"model": name, "content": {"parts": [{"text": t}]}, **common} for t in texts]
    return msgspec.json.encode({"requests": requests})


def text_inputs(inputs: list[str] | list[list[int]]) -> list[str]:
    if not all(isinstance(i, str) for i in inputs):
        raise InvalidRequest("Gemini embeds text: send strings, not token arrays.", param="input")
    return [i for i in inputs if isinstance(i, str)]


def decode_embed_response(data: bytes, model: str, inputs: list[str]) -> EmbeddingResponse:
    """The vectors of a batchEmbedContents reply, in request order, with estimated usage."""
    try:
        reply = msgspec.json.decode(data, type=_Reply)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a batchEmbedContents reply: {exc}") from None
    if len(reply.embeddings) != len(inputs):
        raise MalformedReply(f"{len(reply.embeddings)} embeddings for {len(inputs)} inputs")
    return EmbeddingResponse(model=model, vectors=[e.values for e in reply.embeddings], usage=embedding_usage(inputs))
