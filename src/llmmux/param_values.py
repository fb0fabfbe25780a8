"""The values a generation parameter may take, checked once a request's route is known.

`max_tokens: -1`, `n: -5` or `temperature: -1e308` would otherwise reach an upstream that
answers with an error of its own (or, a local engine, misbehaves: llama.cpp reads a negative
count as "no limit"). The gateway refuses them before any upstream is called, with a 400
naming the field as the client spelled it, in the words the client's API uses: OpenAI's
`Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 3 instead.`
(code `decimal_above_max_value`), Anthropic's `temperature: Input should be less than or
equal to 1`. A route with `pass_unchecked_params: true` lets every value through, for
backends that accept values outside the usual ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidRequest
from .events import ClientApi
from .types import ChatRequest, EmbeddingRequest

INT32_MAX = 2**31 - 1
"""Larger counts overflow the 32-bit fields of local engines (llama.cpp's n_predict)."""
MAX_EMBEDDING_DIMENSIONS = 65_536
"""Far above any embedding model's width (text-embedding-3-large: 3,072); an upstream that
honoured `dimensions: 2**40` would answer terabytes."""


@dataclass(frozen=True, slots=True)
class Range:
    low: float
    high: float
    integer: bool = False


RANGES: dict[str, Range] = {
    "max_tokens": Range(1, INT32_MAX, integer=True),
    "n": Range(1, INT32_MAX, integer=True),
    "top_k": Range(0, INT32_MAX, integer=True),
    "temperature": Range(0, 2),
    "top_p": Range(0, 1),
    "presence_penalty": Range(-2, 2),
    "frequency_penalty": Range(-2, 2),
}
# Where an API's own range is narrower than the widest one above.
NARROWER: dict[str, dict[str, Range]] = {"anthropic": {"temperature": Range(0, 1)}}

# How each client API spells a canonical field, where it differs.
SPELLINGS: dict[str, dict[str, str]] = {
    "openai_responses": {"max_tokens": "max_output_tokens"},
    "ollama": {
        "max_tokens": "options.num_predict",
        "temperature": "options.temperature",
        "top_p": "options.top_p",
        "top_k": "options.top_k",
        "presence_penalty": "options.presence_penalty",
        "frequency_penalty": "options.frequency_penalty",
    },
}
ANTHROPIC = ClientApi.ANTHROPIC


def check_values(request: ChatRequest, client_api: str) -> None:
    """InvalidRequest for the first parameter outside its range, named as `client_api` spells it."""
    narrower = NARROWER.get(client_api)
    for name, bound in RANGES.items():
        value = getattr(request, name)
        if value is None:
            continue
        if narrower is not None:
            bound = narrower.get(name, bound)
        if value < bound.low or value > bound.high:
            raise _out_of_range(_spelling(request, name, client_api), value, bound, client_api)


def check_embedding_values(request: EmbeddingRequest, client_api: str) -> None:
    """InvalidRequest for `dimensions` outside 1 to MAX_EMBEDDING_DIMENSIONS."""
    value = request.dimensions
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"Invalid type for 'dimensions': expected an integer, got {value!r}.", param="dimensions")
    bound = Range(1, MAX_EMBEDDING_DIMENSIONS, integer=True)
    if value < bound.low or value > bound.high:
        raise _out_of_range("dimensions", value, bound, client_api)


def _spelling(request: ChatRequest, name: str, client_api: str) -> str:
    passthrough = request.passthrough
    if name == "max_tokens" and passthrough is not None and "max_completion_tokens" in passthrough.body:
        return "max_completion_tokens"
    return SPELLINGS.get(client_api, {}).get(name, name)


def _out_of_range(param: str, value: float, bound: Range, client_api: str) -> InvalidRequest:
    below = value < bound.low
    limit = bound.low if below else bound.high
    shown = _number(limit)
    if client_api == ANTHROPIC:
        relation = "greater than or equal to" if below else "less than or equal to"
        return InvalidRequest(f"{param}: Input should be {relation} {shown}", param=param)
    kind = "integer" if bound.integer else "decimal"
    side, sign = ("below minimum", ">=") if below else ("above maximum", "<=")
    return InvalidRequest(
        f"Invalid '{param}': {kind} {side} value. Expected a value {sign} {shown}, but got {_number(value)} instead.",
        param=param,
        code=f"{kind}_{'below_min' if below else 'above_max'}_value",
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else repr(value)
