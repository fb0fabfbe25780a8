"""How local-model failures reach clients: as the gateway's own upstream errors.

A model that cannot load is a server-side failure of that one model (502, and the route's
fallbacks still get their turn); a model or pool too busy to take a request is a 503
with Retry-After (`UpstreamRateLimited` carries it, and the route's fallbacks try
elsewhere first).
"""

from __future__ import annotations

from ..errors import ModelLoadFailed, UpstreamRateLimited, UpstreamServerError

BUSY_RETRY_AFTER_S = 2.0


def load_failed(provider: str, model: str, reason: str) -> ModelLoadFailed:
    return ModelLoadFailed(f"model '{model}' could not be loaded: {reason}", provider=provider)


def stopping(provider: str) -> UpstreamServerError:
    """A generation cut short, or refused, because the gateway is shutting down."""
    return UpstreamServerError(
        "generation stopped: the gateway is shutting down", provider=provider, upstream_status=503
    )


def busy(provider: str, message: str, retry_after: float = BUSY_RETRY_AFTER_S) -> UpstreamRateLimited:
    return UpstreamRateLimited(message, provider=provider, upstream_status=503, retry_after=retry_after)
