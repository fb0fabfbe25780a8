"""Wire formats: translation and framing only, no I/O.

A wire module reports what is wrong with an upstream's bytes with the two exceptions
below; it never builds the gateway's errors itself. The provider that called the upstream
turns them into the error tree in one place (`llmmux.providers.http_provider`), where it
knows which provider spoke and how that API classifies an error.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

__all__ = ["ErrorReply", "MalformedReply", "decode_json"]

T = TypeVar("T")


class MalformedReply(ValueError):
    """The upstream's bytes are not the reply its API promises: bad JSON, a missing field, a
    broken frame. Another try (or another provider) may do better: a bad response, retried."""


class ErrorReply(Exception):
    """The upstream reported a failure inside a reply it sent as a success: an error object in
    a 200 body, or an error event or line in a stream.

    `status` is the HTTP status the failure stands for (500 where the upstream gives none) and
    `body` the error's own bytes, so the API's error classifier can refine it as it refines an
    HTTP error. The message reads after the provider's name ("local failed: out of memory").
    """

    def __init__(self, message: str, *, status: int = 500, body: bytes | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def decode_json(data: bytes, type: type[T], what: str) -> T:
    """`data` decoded as `type`; a body of another shape is a MalformedReply naming `what`."""
    try:
        return msgspec.json.decode(data, type=type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"{what}: {exc}") from None
