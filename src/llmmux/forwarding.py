"""Which client headers and query strings a provider passes on to its upstream.

A door records the client's headers as received on the call's context (no work on the hot
path); each provider passes on only the names in its allow-list: its type's defaults
(`ProviderType.forward_headers`: `anthropic-beta` and `anthropic-version` for Anthropic)
plus the provider config's `forward_headers: [...]`. Nothing in `NEVER_FORWARDED` ever passes,
whatever the config says: the gateway's own key must not reach an upstream.

>>> allowed = allow_list(["Anthropic-Beta", "X-Api-Key"])
>>> select([(b"x-api-key", b"secret"), (b"anthropic-beta", b"a"), (b"anthropic-beta", b"b")], allowed)
{'anthropic-beta': 'a,b'}
"""

from __future__ import annotations

from collections.abc import Iterable

CONFIG_KEY = "forward_headers"

NEVER_FORWARDED = frozenset(
    {
        # Credentials for llmmux itself: a provider sends its own.
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        # Framing, which the upstream call sets for itself.
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "accept-encoding",
    }
)
"""Client headers no provider's allow-list can pass on."""


def allow_list(names: Iterable[str]) -> frozenset[bytes]:
    """Header names as ASGI gives them (lower-case bytes), less those that never pass."""
    return frozenset(n.lower().encode("latin-1") for n in names if n.lower() not in NEVER_FORWARDED)


def select(raw: Iterable[tuple[bytes, bytes]] | None, allowed: frozenset[bytes]) -> dict[str, str] | None:
    """The client's headers on `allowed`, by lower-case name (repeats joined by commas); None if none.

    Only providers with an allow-list call this, so a request pays for it only on its way to one.
    """
    if not raw or not allowed:
        return None
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        if key in allowed:
            text, label = value.decode("latin-1"), key.decode("latin-1")
            headers[label] = f"{headers[label]},{text}" if label in headers else text
    return headers or None


def barred(names: Iterable[str]) -> list[str]:
    """The names a `forward_headers` setting lists that never pass, lower-cased and sorted."""
    return sorted({h.lower() for h in names} & NEVER_FORWARDED)
