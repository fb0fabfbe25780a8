"""A behaviour that answers with recorded bytes, exactly as a provider's documentation shows them.

`replay(body)` sends `body` (a reply or a whole event stream) with the given status and
content type; `cut_after` sends only that many bytes and drops the connection, the way a
stream dies mid-event. Fakes that mix in `ReplayMixin` understand it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from .base import Behaviour, abort


@dataclass(frozen=True)
class Replay(Behaviour):
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    cut_after: int | None = None


def replay(
    body: bytes,
    *,
    status: int = 200,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    cut_after: int | None = None,
) -> Replay:
    """Answer with exactly `body`; with `cut_after`, only its first bytes, then drop the connection."""
    return Replay(body, status, content_type, dict(headers or {}), cut_after)


class ReplayMixin:
    """Adds `Replay` to a fake's behaviours (mix in before `FakeUpstream`)."""

    async def _fault(self, request: web.Request, behaviour: Behaviour) -> web.StreamResponse:
        if not isinstance(behaviour, Replay):
            return await super()._fault(request, behaviour)  # type: ignore[misc, no-any-return]
        response = web.StreamResponse(
            status=behaviour.status, headers={**behaviour.headers, "Content-Type": behaviour.content_type}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        if behaviour.cut_after is not None:
            await response.write(behaviour.body[: behaviour.cut_after])
            await abort(request)
        await response.write(behaviour.body)
        await response.write_eof()
        return response
