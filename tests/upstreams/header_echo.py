"""A fake OpenAI whose errors repeat the request's headers: a misconfigured proxy in front of an upstream.

Models named `boom-<status>` (e.g. `boom-401`, `boom-500`) answer that status; the error
message carries every request header, and the bare credential the proxy saw, so anything
the gateway passes on from an upstream error can be searched for the provider's key.
"""

from __future__ import annotations

from aiohttp import web

from .base import Exchange, HttpError
from .openai_server import FakeOpenAI

BOOM = "boom-"


class HeaderEchoOpenAI(FakeOpenAI):
    async def _chat(self, ex: Exchange) -> web.StreamResponse:
        self._boom(ex)
        return await super()._chat(ex)

    async def _completions(self, ex: Exchange) -> web.StreamResponse:
        self._boom(ex)
        return await super()._completions(ex)

    async def _embeddings(self, ex: Exchange) -> web.StreamResponse:
        self._boom(ex)
        return await super()._embeddings(ex)

    def _boom(self, ex: Exchange) -> None:
        body = ex.record.json if isinstance(ex.record.json, dict) else {}
        model = body.get("model")
        if not isinstance(model, str) or not model.startswith(BOOM):
            return
        code = int(model.removeprefix(BOOM))
        headers = "; ".join(f"{name}: {value}" for name, value in ex.record.headers.items())
        token = ex.record.headers.get("authorization", "").removeprefix("Bearer ")
        message = f"proxy rejected token {token} (request headers: {headers})"
        raise HttpError(code, self.error_payload(code, message))
