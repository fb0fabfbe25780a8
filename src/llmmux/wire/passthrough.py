"""A client's body for an upstream of the same API: as it came, but for what a step changed.

A door keeps the client's body beside the canonical request (`ChatRequest.passthrough`);
every later step (parameter aliases, dropped parameters, a local model's output cap, tag
removal) changes the canonical fields only. The encoder of the client's own API calls
`body_for` with what each top-level key of its format is made from: a key whose canonical
sources are unchanged goes out exactly as the client sent it (content blocks, beta fields,
cache marks and key order included); a changed one is taken from the canonical encoding,
or left out where that no longer has it; a key the canonical encoding gained is added.

    body = body_for(request, SOURCES, lambda: canonical_body(request))

Keys not in `sources` are, by default, the ones the door kept in `ChatRequest.extra`, so
they follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..types import ChatRequest

Sources = Mapping[str, tuple[str, ...]]
"""Top-level key of a wire body -> the canonical fields it is made from (empty: none)."""

_EXTRA = ("extra",)


def body_for(
    request: ChatRequest,
    sources: Sources,
    canonical: Callable[[], dict[str, Any]],
    unlisted: tuple[str, ...] = _EXTRA,
) -> dict[str, Any]:
    """The body to send: a new dict the caller may edit (`model`, `stream`).

    `unlisted`: what a key missing from `sources` is made from; `extra` where the door keeps
    every unmodelled field there, nothing where such fields can only pass through as sent."""
    passthrough = request.passthrough
    changed = request.changed()
    assert passthrough is not None and changed is not None, "only for a request with a passthrough"
    if not changed:
        return dict(passthrough.body)
    fresh = canonical()
    body: dict[str, Any] = {}
    for key, value in passthrough.body.items():
        if not _touched(sources.get(key, unlisted), changed):
            body[key] = value
        elif key in fresh:
            body[key] = _follow(value, fresh[key])
    for key, value in fresh.items():
        if key not in passthrough.body and _touched(sources.get(key, unlisted), changed):
            body[key] = value
    return body


def kept_items(
    sent: Any,
    offered: Mapping[str, Any],
    name_of: Callable[[Any], str | None],
    encode: Callable[[Any], dict[str, Any]],
    keep_unnamed: Callable[[Any], bool] = lambda item: True,
) -> list[Any]:
    """A list of named items (tools) after a step changed it: the client's items still
    `offered` (by name) as sent, unnamed ones (a backend's own tools) where `keep_unnamed`,
    then the items a step added, encoded."""
    kept: list[Any] = []
    seen: set[str] = set()
    for item in sent if isinstance(sent, list) else ():
        name = name_of(item)
        if name is None:
            if keep_unnamed(item):
                kept.append(item)
        elif name in offered:
            kept.append(item)
            seen.add(name)
    return kept + [encode(value) for name, value in offered.items() if name not in seen]


def renamed(names: Mapping[str, str]) -> Sources:
    """Sources for keys that each hold one canonical field under another name (`max_output_tokens`)."""
    return {key: (name,) for key, name in names.items()}


def fields_as(request: ChatRequest, names: Mapping[str, str]) -> dict[str, Any]:
    """The canonical encoding of such keys: each set field under its wire name."""
    return {key: value for key, name in names.items() if (value := getattr(request, name)) is not None}


def _follow(sent: Any, fresh: Any) -> Any:
    """A changed mapping (Ollama's `options`, a `text` object) in the client's key order, with
    the client's own spelling of every value that did not change (`1`, not `1.0`)."""
    if not (isinstance(sent, dict) and isinstance(fresh, dict)):
        return fresh
    merged = {key: sent[key] if sent[key] == fresh[key] else fresh[key] for key in sent if key in fresh}
    merged.update((key, value) for key, value in fresh.items() if key not in sent)
    return merged


def _touched(names: tuple[str, ...], changed: list[str]) -> bool:
    return any(name in changed for name in names)
