"""Hypothesis strategies for hostile requests: every door's body with fields replaced by JSON of
every type, whole bodies of random JSON, deep nesting, huge strings, invalid UTF-8, odd content types.

`FUZZ_SETTINGS` bounds the suite for CI; `LLMMUX_FUZZ_EXAMPLES=5000` runs a long, randomised pass.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG_RUN = os.environ.get("LLMMUX_FUZZ_EXAMPLES")
FUZZ_SETTINGS = settings(
    max_examples=int(LONG_RUN or 40),
    deadline=None,
    # CI runs the same examples every time (a failure reproduces); a long run explores afresh.
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

USER = [{"role": "user", "content": "hi"}]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, -1, 1e23, -1e308, 1.5, 2**31, 2**63, "", "0", "true", "null"])
    | st.text(max_size=40)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)

ROLES = ["user", "assistant", "system", "developer", "tool", "function", "model", "", "USER"]
PART_TYPES = [
    "text",
    "image_url",
    "input_text",
    "input_image",
    "image",
    "tool_use",
    "tool_result",
    "thinking",
    "document",
    "input_audio",
    "file",
    "refusal",
    "output_text",
    "function_call",
    "function_call_output",
    "message",
    "reasoning",
]
parts = st.fixed_dictionaries(
    {"type": st.sampled_from(PART_TYPES) | st.text(max_size=8)},
    optional={
        "text": json_values,
        "image_url": json_values,
        "source": json_values,
        "content": json_values,
        "id": json_values,
        "name": json_values,
        "input": json_values,
        "arguments": json_values,
        "call_id": json_values,
        "tool_use_id": json_values,
        "role": st.sampled_from(ROLES),
        "output": json_values,
    },
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(ROLES) | json_values},
        optional={
            "content": st.text(max_size=30) | st.lists(parts, max_size=3) | json_values,
            "tool_calls": json_values,
            "tool_call_id": json_values,
            "name": json_values,
            "images": json_values,
            "thinking": json_values,
        },
    ),
    max_size=4,
)
tools = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["function", "custom", "web_search", "namespace"]) | json_values},
        optional={"function": json_values, "name": json_values, "input_schema": json_values, "parameters": json_values},
    ),
    max_size=2,
)

refused_names = st.one_of(
    json_values.filter(lambda v: not isinstance(v, str)),
    st.just(""),
    st.text(min_size=257, max_size=300),
    st.builds(lambda a, b: f"{a}\x00{b}", st.text(max_size=5), st.text(max_size=5)),
)

# Fields any door might read; each door also gets its own.
COMMON_FIELDS = [
    "model",
    "stream",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop",
    "seed",
    "user",
    "tools",
    "tool_choice",
    "response_format",
    "stream_options",
    "provider",
    "capability",
    "metadata",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
]


@dataclass(frozen=True)
class Door:
    """One JSON door: where it is, a good body, the fields worth fuzzing, and its error shape."""

    method: str
    path: str
    good: dict[str, Any]
    fields: list[str]
    shape: str  # "openai", "anthropic" or "ollama"
    special: dict[str, st.SearchStrategy[Any]] = field(default_factory=dict)


def _door(method: str, path: str, good: dict[str, Any], extra: list[str], shape: str) -> Door:
    structured = {"messages": messages | json_values, "tools": tools | json_values}
    return Door(method, path, good, COMMON_FIELDS + extra, shape, structured)


DOORS = [
    _door(
        "POST",
        "/v1/chat/completions",
        {"model": "chat", "messages": USER},
        ["messages", "parallel_tool_calls", "modalities", "reasoning_effort", "audio", "functions", "function_call"],
        "openai",
    ),
    _door(
        "POST", "/v1/completions", {"model": "chat", "prompt": "hi"}, ["prompt", "suffix", "echo", "best_of"], "openai"
    ),
    _door(
        "POST",
        "/v1/embeddings",
        {"model": "embed", "input": "hi"},
        ["input", "dimensions", "encoding_format"],
        "openai",
    ),
    _door(
        "POST",
        "/v1/responses",
        {"model": "chat", "input": "hi"},
        ["input", "instructions", "max_output_tokens", "previous_response_id", "store", "reasoning", "text", "include"],
        "openai",
    ),
    _door(
        "POST",
        "/v1/messages",
        {"model": "chat", "max_tokens": 16, "messages": USER},
        ["messages", "system", "thinking", "stop_sequences", "mcp_servers", "container", "service_tier"],
        "anthropic",
    ),
    _door(
        "POST",
        "/v1/messages/count_tokens",
        {"model": "chat", "messages": USER},
        ["messages", "system", "thinking"],
        "anthropic",
    ),
    _door(
        "POST",
        "/api/chat",
        {"model": "chat", "messages": USER, "stream": False},
        ["messages", "options", "format", "keep_alive", "think", "images"],
        "ollama",
    ),
    _door(
        "POST",
        "/api/generate",
        {"model": "chat", "prompt": "hi", "stream": False},
        ["prompt", "system", "template", "raw", "options", "format", "images", "context", "suffix", "think"],
        "ollama",
    ),
    _door(
        "POST",
        "/api/embed",
        {"model": "embed", "input": "hi"},
        ["input", "truncate", "options", "dimensions"],
        "ollama",
    ),
    _door("POST", "/api/embeddings", {"model": "embed", "prompt": "hi"}, ["prompt", "options"], "ollama"),
    _door("POST", "/api/show", {"model": "chat"}, ["name", "verbose"], "ollama"),
    # A pull of a name the registry lacks is the upstream's own 500 ("file does not exist"), passed
    # on as a 502: the names fuzzed here are ones the gateway must refuse before the upstream.
    Door(
        "POST",
        "/api/pull",
        {"model": "llama3.2:latest", "stream": False},
        [*COMMON_FIELDS, "name", "insecure"],
        "ollama",
        {"model": refused_names, "name": refused_names},
    ),
    _door("DELETE", "/api/delete", {"model": "no-such-model:latest"}, ["name"], "ollama"),
    Door(
        "POST",
        "/admin/keys",
        {"name": "fuzzed"},
        ["name", "budget", "budget_period", "rpm", "tpm", "models", "expires", "store", "now", "expires_at"],
        "openai",
    ),
]


def field_value(door: Door, name: str) -> st.SearchStrategy[Any]:
    special = door.special.get(name)
    return json_values if special is None else special


@st.composite
def bodies(draw: st.DrawFn, door: Door) -> Any:
    """A door's good body with one to four fields replaced, added or removed; now and then random JSON entire."""
    if draw(st.integers(0, 9)) == 9:
        return draw(json_values)
    body = dict(door.good)
    for name in draw(st.lists(st.sampled_from(door.fields), min_size=1, max_size=4, unique=True)):
        if draw(st.integers(0, 5)) == 5:
            body.pop(name, None)
        else:
            body[name] = draw(field_value(door, name))
    return body


CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
    "",
]


def _deep(depth: int, opener: str) -> bytes:
    closer = "]" if opener == "[" else "}"
    inner = '{"a":' if opener == "{" else "["
    return ('{"model": "chat", "messages": ' + inner * depth + "1" + closer * depth + "}").encode()


raw_bodies: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda b: b'{"model": "chat", "messages": [{"role": "user", "content": "' + b + b'"}]}', st.binary(max_size=40)
    ),
    st.builds(_deep, st.integers(200, 20_000), st.sampled_from(["[", "{"])),
    st.builds(lambda n: ('{"model": "' + "m" * n + '", "messages": []}').encode(), st.integers(1_000, 2_000_000)),
    st.builds(
        lambda n: ('{"model": "chat", "messages": [{"role": "user", "content": "' + "x" * n + '"}]}').encode(),
        st.integers(100_000, 3_000_000),
    ),
    st.just(b'{"model": "chat", "messages": [], "n": 1e999}'),
    st.just(b'{"model": "chat", "model": 1}'),
    st.just(b"\xef\xbb\xbf{}"),
)


def error_shape(shape: str) -> Callable[[Any], bool]:
    return SHAPES[shape]


def _openai(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error


def _anthropic(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return (
        body.get("type") == "error"
        and isinstance(error, dict)
        and isinstance(error.get("type"), str)
        and isinstance(error.get("message"), str)
    )


def _ollama(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("error"), str)


SHAPES: dict[str, Callable[[Any], bool]] = {"openai": _openai, "anthropic": _anthropic, "ollama": _ollama}
