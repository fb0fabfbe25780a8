"""Request tags: labels a client puts on a request so spend can be split by project or feature.

A request names its tags in the `x-llmmux-tags: a,b` header or in its body's
`metadata.tags` (a list, or a comma-separated string where a door's metadata holds only
strings, as in the Responses API); its key adds its default tags. Tags are bounded in
count and length and limited to a safe alphabet, so they are fit for the ledger, report
filters and routing rules, and never carry anything a header or a log line cannot hold.

>>> request_tags(b"batch, team-a", {"tags": ["x"]}, ["ci"])
('batch', 'team-a', 'x', 'ci')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import InvalidRequest

HEADER = b"x-llmmux-tags"
MAX_TAGS = 16
MAX_TAG_LENGTH = 64
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/=+-]*\Z")
SEPARATOR = ","


def request_tags(header: bytes | None, given: Any, defaults: Iterable[str] = ()) -> tuple[str, ...]:
    """The request's tags: the header's, then `metadata.tags` (`given`), then the defaults; each once, in order.

    Raises InvalidRequest (a 400 in the door's own format) for a malformed or oversized tag list.
    """
    named: list[str] = []
    if header:
        named.extend(split(header.decode("latin-1"), "the x-llmmux-tags header"))
    if isinstance(given, str):
        named.extend(split(given, "metadata.tags"))
    elif isinstance(given, list):
        if not all(isinstance(t, str) for t in given):
            raise InvalidRequest("metadata.tags: expected a list of strings.", param="metadata.tags")
        named.extend(check(t.strip(), "metadata.tags") for t in given if t.strip())
    elif given is not None:
        raise InvalidRequest("metadata.tags: expected a list of strings or 'a,b'.", param="metadata.tags")
    tags = tuple(dict.fromkeys([*named, *defaults]))
    if len(tags) > MAX_TAGS:
        raise InvalidRequest(f"A request may carry at most {MAX_TAGS} tags; it has {len(tags)}.", param="tags")
    return tags


def taken(body: Any) -> tuple[Any, Any]:
    """(`body` less `metadata.tags`, the tags): what a door hands on, and what it keeps for admission."""
    metadata = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(metadata, dict) or "tags" not in metadata:
        return body, None
    return without_tags(body), metadata["tags"]


def without_tags(body: dict[str, Any]) -> dict[str, Any]:
    """`body` less `metadata.tags` (and `metadata` when nothing else was in it), as a new dict.

    Tags are for the gateway, and upstreams refuse them (OpenAI's metadata values must be
    strings; Anthropic's metadata knows only `user_id`). The body itself is left alone.
    """
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or "tags" not in metadata:
        return body
    rest = {k: v for k, v in metadata.items() if k != "tags"}
    stripped = {k: v for k, v in body.items() if k != "metadata"}
    if rest:
        stripped["metadata"] = rest
    return stripped


def split(text: str, where: str) -> list[str]:
    return [check(part.strip(), where) for part in text.split(SEPARATOR) if part.strip()]


def check(tag: str, where: str) -> str:
    if len(tag) > MAX_TAG_LENGTH or not _TAG.match(tag):
        shown = tag[:MAX_TAG_LENGTH] + ("..." if len(tag) > MAX_TAG_LENGTH else "")
        raise InvalidRequest(
            f"{where}: invalid tag {shown!r}: up to {MAX_TAG_LENGTH} letters, digits and . _ : / = + -,"
            " starting with a letter or digit.",
            param="tags",
        )
    return tag


def parse_tags(value: Any) -> list[str]:
    """Default tags as an admin gives them: `"a,b"` or a list; ValueError says what is wrong."""
    if value is None:
        return []
    items = value.split(SEPARATOR) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("tags: expected a comma-separated string or a list of tags")
    try:
        tags = list(dict.fromkeys(check(i.strip(), "tags") for i in items if i.strip()))
    except InvalidRequest as exc:
        raise ValueError(exc.message) from None
    if len(tags) > MAX_TAGS:
        raise ValueError(f"tags: at most {MAX_TAGS}")
    return tags


def to_column(tags: tuple[str, ...]) -> str | None:
    """The ledger's form: a JSON array, or NULL for none.

    One column rather than a join table keeps the insert one row per request. Tags hold no
    quote, so "has tag X" is a search for '"X"', and both engines expand the array for `--by tag`.
    """
    return "[" + SEPARATOR.join(f'"{t}"' for t in tags) + "]" if tags else None


def needle(tag: str) -> str:
    """What a ledger `tags` value contains exactly when the request carries `tag`."""
    return f'"{tag}"'
