"""Embedding models on Bedrock through InvokeModel: each family's own body, translated.

Pure translation, no I/O. InvokeModel carries the model's native JSON, so the family is
told by the model id (an inference profile's region prefix, `us.` or `eu.`, is skipped):

* Amazon Titan Text Embeddings (`amazon.titan-embed-text-*`): one text a call,
  `{"inputText", "dimensions"?, "normalize"}` -> `{"embedding", "inputTextTokenCount"}`;
* Cohere Embed (`cohere.embed-*`): up to 96 texts a call, `{"texts", "input_type"}` ->
  `{"embeddings": [[...]]}` (v3) or `{"embeddings": {"float": [[...]]}}` (v4, which also
  takes `output_dimension`), with no token count, so usage is estimated and marked so.
"""

from __future__ import annotations

import enum
import re
from typing import Any

import msgspec

from ..errors import InvalidRequest
from ..estimate import embedding_usage
from ..types import EmbeddingRequest, EmbeddingResponse, Usage
from . import MalformedReply

__all__ = ["Family", "batch_limit", "decode_embed_response", "encode_embed_request", "family_of", "text_inputs"]

COHERE_BATCH_LIMIT = 96  # texts per call, Cohere Embed's documented maximum on Bedrock
COHERE_INPUT_TYPE = "search_document"  # what a stored corpus is embedded as; `extra.input_type` overrides
_PROFILE_PREFIX = re.compile(r"^(?:[a-z]{2,4}\.)(?=[a-z]+\.)")  # us., eu., apac., global.


class Family(enum.Enum):
    TITAN = "amazon.titan-embed"
    COHERE = "cohere.embed-"


class _Titan(msgspec.Struct, rename="camel"):
    embedding: list[float]
    input_text_token_count: int = 0


class _Cohere(msgspec.Struct):
    embeddings: list[list[float]] | dict[str, list[list[float]]]  # v3: floats; v4: by embedding type


def family_of(model: str) -> Family | None:
    """The embedding family of a model id, inference profile id or foundation-model ARN; None if not one."""
    base = _PROFILE_PREFIX.sub("", model.rsplit("/", 1)[-1])
    return next((f for f in Family if base.startswith(f.value)), None)


def batch_limit(family: Family) -> int:
    return 1 if family is Family.TITAN else COHERE_BATCH_LIMIT


def text_inputs(inputs: list[str] | list[list[int]]) -> list[str]:
    if not all(isinstance(i, str) for i in inputs):
        raise InvalidRequest("Bedrock embedding models embed text: send strings, not token arrays.", param="input")
    return [i for i in inputs if isinstance(i, str)]


def encode_embed_request(family: Family, request: EmbeddingRequest, texts: list[str]) -> bytes:
    """The InvokeModel body for `texts` (exactly one text for Titan)."""
    body: dict[str, Any]
    if family is Family.TITAN:
        body = {"inputText": texts[0], "normalize": request.extra.get("normalize", True)}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
    else:
        body = {"texts": texts, "input_type": request.extra.get("input_type", COHERE_INPUT_TYPE)}
        if request.dimensions is not None:  # Embed v4 only; v3's fixed size makes Bedrock refuse it
            body["output_dimension"] = request.dimensions
        if "truncate" in request.extra:
            body["truncate"] = request.extra["truncate"]
    return msgspec.json.encode(body)


def decode_embed_response(family: Family, data: bytes, model: str, texts: list[str]) -> EmbeddingResponse:
    try:
        if family is Family.TITAN:
            titan = msgspec.json.decode(data, type=_Titan)
            count = titan.input_text_token_count
            return EmbeddingResponse(
                model=model, vectors=[titan.embedding], usage=Usage(prompt_tokens=count, total_tokens=count)
            )
        cohere = msgspec.json.decode(data, type=_Cohere)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a {family.value} InvokeModel reply: {exc}") from None
    vectors = cohere.embeddings if isinstance(cohere.embeddings, list) else cohere.embeddings.get("float", [])
    if len(vectors) != len(texts):
        raise MalformedReply(f"{len(vectors)} float embeddings for {len(texts)} texts")
    return EmbeddingResponse(model=model, vectors=vectors, usage=embedding_usage(texts))
