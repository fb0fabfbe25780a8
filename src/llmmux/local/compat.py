"""Where llama.cpp's OpenAI surface differs from OpenAI's, and how the provider closes the gap.

- A named `tool_choice` (`{"type": "function", "function": {"name": ...}}`): llama-server
  takes only "auto", "none" and "required", and treats an object as "auto" (a warning in
  its log, a reply that may call nothing). Offering that one tool and requiring a call
  asks for the same thing in terms it honours.
- `dimensions` on embeddings: llama-server ignores it and returns the model's full width.
  Ollama truncates each vector and scales it back to unit length (how Matryoshka-trained
  models are meant to be shortened); llmmux does the same.

    >>> fit_dimensions([[0.6, 0.8, 0.0]], 1, "nomic")
    [[1.0]]
"""

from __future__ import annotations

import math

import msgspec

from ..errors import InvalidRequest
from ..types import ChatRequest


def force_named_tool(request: ChatRequest) -> ChatRequest:
    """The request with a named `tool_choice` turned into that tool alone, required."""
    choice = request.tool_choice
    if not isinstance(choice, dict):
        return request
    name = (choice.get("function") or {}).get("name")
    tools = [tool for tool in request.tools or [] if tool.name == name]
    if not tools:
        raise InvalidRequest(
            f"'tool_choice' names the function {name!r}, which is not one of the request's 'tools'.",
            param="tool_choice",
        )
    return msgspec.structs.replace(request, tools=tools, tool_choice="required")


def cap_output(request: ChatRequest, cap: int | None) -> ChatRequest:
    """The request with its output limit at most `cap` (a model's `max_output_tokens`), so a
    model that loops frees its slot; a request that sets no limit gets `cap`."""
    if cap is None:
        return request
    limit = cap if request.max_tokens is None else min(cap, request.max_tokens)
    return msgspec.structs.replace(request, max_tokens=limit)


def fit_dimensions(vectors: list[list[float]], dimensions: int | None, model: str) -> list[list[float]]:
    """The vectors cut to `dimensions` and scaled back to unit length; a 400 past their width."""
    if dimensions is None or not vectors:
        return vectors
    width = len(vectors[0])
    if not 1 <= dimensions <= width:
        raise InvalidRequest(
            f"'dimensions' must be between 1 and {width}: model '{model}' makes {width}-dimensional embeddings.",
            param="dimensions",
        )
    if dimensions == width:
        return vectors
    return [_unit(vector[:dimensions]) for vector in vectors]


def _unit(vector: list[float]) -> list[float]:
    norm = math.hypot(*vector)
    return [value / norm for value in vector] if norm else vector
