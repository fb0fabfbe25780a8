"""Which client headers and query strings a provider passes on to its upstream.

A door records the client's headers, less credentials and framing, on the call's context;
each provider passes on only the names in its allow-list: its type's defaults
(`ProviderType.forward_headers`: `anthropic-beta` and `anthropic-version` for Anthropic)
plus the provider config's `forward_headers: [...]`. Nothing in `NEVER_FORWARDED` ever passes,
whatever the config says: the gateway's own key must not reach an upstream.

>>> forwardable_headers([(b"X-Api-Key", b"secret"), (b"Anthropic-Beta", b"a"), (b"anthropic-beta", b"b")])
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


def forwardable_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The client's headers a provider may forward, by lower-case name (repeats joined by commas)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key in NEVER_FORWARDED:
            continue
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def config_problems(setting: object) -> list[str]:
    """What is wrong with a provider's `forward_headers` setting, as sentences."""
    if setting is None:
        return []
    if not isinstance(setting, list) or not all(isinstance(h, str) and h for h in setting):
        return [f"{CONFIG_KEY} must be a list of header names, got {setting!r}"]
    barred = sorted({h.lower() for h in setting} & NEVER_FORWARDED)
    if barred:
        return [f"{CONFIG_KEY} cannot pass on {', '.join(barred)}: credentials and framing never pass"]
    return []
