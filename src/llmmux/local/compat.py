"""Where llama.cpp's OpenAI surface differs from OpenAI's, and how the provider closes the gap.

- `dimensions` on embeddings: llama-server ignores it and returns the model's full width.
  Ollama truncates each vector and scales it back to unit length (how Matryoshka-trained
  models are meant to be shortened); llmmux does the same.

    >>> fit_dimensions([[0.6, 0.8, 0.0]], 1, "nomic")
    [[1.0]]
"""

from __future__ import annotations

import math

from ..errors import InvalidRequest


def fit_dimensions(vectors: list[list[float]], dimensions: int | None, model: str) -> list[list[float]]:
    """The vectors cut to `dimensions` and scaled back to unit length; a 400 past their width."""
    if dimensions is None or not vectors:
        return vectors
    width = len(vectors[0])
    if not 1 <= dimensions <= width:
        raise InvalidRequest(f"'dimensions' must be between 1 and {width}: model '{model}' makes "
                             f"{width}-dimensional embeddings.", param="dimensions")
    if dimensions == width:
        return vectors
    return [_unit(vector[:dimensions]) for vector in vectors]


def _unit(vector: list[float]) -> list[float]:
    norm = math.hypot(*vector)
    return [value / norm for value in vector] if norm else vector
