"""Bounds on the strings a client chooses that the gateway keeps or repeats.

A model name travels into the ledger, the metrics labels, the logs, response headers and
error messages. Unbounded, one request with a 10 MB name costs megabytes in each of them,
and a name with control characters cannot go into a header at all. Names are therefore
checked once, before routing, and anything echoed back is clipped.
"""

from __future__ import annotations

from urllib.parse import quote

from .errors import MAX_NAME_CHARS, InvalidRequest, clipped

__all__ = ["MAX_NAME_CHARS", "check_model_name", "clip", "header_value"]

HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def clip(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """`text`, cut to `limit` characters with a marker saying how much was left out."""
    return clipped(text, limit)


def check_model_name(name: str, param: str = "model") -> None:
    """InvalidRequest for a name too long to keep, or with characters no header or log line should carry."""
    if len(name) > MAX_NAME_CHARS:
        raise InvalidRequest(
            f"The model name is {len(name)} characters long; the limit is {MAX_NAME_CHARS}.",
            param=param,
            code="model_name_too_long",
        )
    if not name.isprintable():
        raise InvalidRequest(
            f"The model name {name!r} contains control or invisible characters.", param=param, code="invalid_model_name"
        )


def header_value(text: str) -> bytes:
    """`text` as an HTTP header value: printable ASCII as is, anything else percent-encoded (UTF-8).

    A pattern route can route a name such as `pat/中文`; latin-1 cannot carry it, and a
    header that fails to encode after the upstream answered would cost the client its reply.
    """
    if text.isascii() and text.isprintable():
        return text.encode("ascii")
    return quote(text, safe=HEADER_SAFE).encode("ascii")
