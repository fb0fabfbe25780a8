"""A local model's own sampling defaults, and the loop guard's settings, as config gives them.

    models:
      - name: smollm2-135m
        path: ~/models/SmolLM2-135M-Instruct.Q4_1.gguf
        sampling: {repeat_penalty: 1.1, dry_multiplier: 0.8}   # llama.cpp's request field names
        loop_guard: {repeats: 4, min_chars: 256}                  # or false, or true (the defaults)

`sampling` fields are added to each chat request that does not set them: what the client
sends always wins. The names are llama-server's request fields; the llama-cpp-python engine
honours the classic ones (`LLAMA_CPP_PYTHON`), MLX its own few (`MLX`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from ..config.fields import FieldReader
from ..types import ChatRequest
from .repetition import LoopGuard

# llama-server's sampling fields (tools/server `params_from_json_cmpl`) and the JSON type of each.
LLAMA_CPP: dict[str, type] = {
    "temperature": float,
    "dynatemp_range": float,
    "dynatemp_exponent": float,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "typical_p": float,
    "top_n_sigma": float,
    "xtc_probability": float,
    "xtc_threshold": float,
    "repeat_penalty": float,
    "repeat_last_n": int,
    "presence_penalty": float,
    "frequency_penalty": float,
    "dry_multiplier": float,
    "dry_base": float,
    "dry_allowed_length": int,
    "dry_penalty_last_n": int,
    "dry_sequence_breakers": list,
    "mirostat": int,
    "mirostat_tau": float,
    "mirostat_eta": float,
    "min_keep": int,
    "samplers": list,
}
LLAMA_CPP_PYTHON = frozenset(
    {"temperature", "top_k", "top_p", "min_p", "typical_p", "repeat_penalty", "presence_penalty", "frequency_penalty"}
)
MLX: dict[str, type] = {
    "temperature": float,
    "top_k": int,
    "top_p": float,
    "min_p": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "repetition_penalty": float,
}
_encode = msgspec.json.Encoder()


def parse_sampling(value: Any, engine: str, path: str, reader: FieldReader) -> dict[str, Any]:
    """A `sampling:` mapping checked against what `engine` takes (names and JSON types)."""
    if not isinstance(value, Mapping):
        reader.error(path, "expected a mapping of sampling fields to values, e.g. {repeat_penalty: 1.1}")
        return {}
    known = MLX if engine == "mlx" else LLAMA_CPP
    sampling: dict[str, Any] = {}
    for key, field_value in value.items():
        kind = known.get(key)
        if kind is None:
            reader.error(f"{path}.{key}", f"unknown sampling field; known: {', '.join(sorted(known))}")
        elif not _is(field_value, kind):
            reader.error(f"{path}.{key}", f"expected {'a list' if kind is list else 'a number'}, got {field_value!r}")
        else:
            sampling[key] = field_value
    return sampling


def _is(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def parse_loop_guard(value: Any, path: str, reader: FieldReader) -> LoopGuard | None:
    """`loop_guard:` as true (the defaults), false, or a mapping of LoopGuard's fields."""
    if value is True:
        return LoopGuard()
    if value is False:
        return None
    if not isinstance(value, Mapping):
        reader.error(path, "expected true, false or a mapping with repeats, min_chars, max_period")
        return LoopGuard()
    fields: dict[str, int] = {}
    for key, number in value.items():
        if key not in LoopGuard.__dataclass_fields__:
            reader.error(f"{path}.{key}", "unknown loop_guard field; known: repeats, min_chars, max_period")
        elif not isinstance(number, int) or isinstance(number, bool) or number < (2 if key == "repeats" else 1):
            reader.error(f"{path}.{key}", f"expected an integer >= {2 if key == 'repeats' else 1}, got {number!r}")
        else:
            fields[key] = number
    return LoopGuard(**fields)


def with_sampling(body: bytes, request: ChatRequest, defaults: Mapping[str, Any]) -> bytes:
    """The encoded request (a JSON object) with each default the request does not set added."""
    if not defaults:
        return body
    missing = {
        key: value
        for key, value in defaults.items()
        if key not in request.extra and getattr(request, key, None) is None
    }
    return body[:-1] + b"," + _encode.encode(missing)[1:] if missing else body
