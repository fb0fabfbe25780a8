"""A fake OpenAI whose errors repeat the request's headers: a misconfigured proxy in front of an upstream.

Models named `boom-<status>` (e.g. `boom-401`, `boom-500`) answer that status; the error
message carries every request header, and the bare credential the proxy saw, so anything
the gateway passes on from an upstream error can be searched for the provider's key.
`boom-midstream` streams one chunk, then an error event saying the same.
"""

from __future__ import annotations

import json

from aiohttp import web

from .base import Exchange, HttpError
from .openai_server import FakeOpenAI

BOOM = "boom-"
MIDSTREAM = "boom-midstream"


class HeaderEchoOpenAI(FakeOpenAI):
    async def _chat(self, ex: Exchange) -> web.StreamResponse:
        body = ex.record.json if isinstance(ex.record.json, dict) else {}
        if body.get("model") == MIDSTREAM:
            return await self._break_midstream(ex)
        self._boom(ex)
        return await super()._chat(ex)

    async def _break_midstream(self, ex: Exchange) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(ex.request)
        delta = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "hel"}, "finish_reason": None}]}
        chunk = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": 0, "model": MIDSTREAM, **delta}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        error = {"error": {"message": self._echo(ex), "type": "server_error"}}
        await response.write(f"data: {json.dumps(error)}\n\n".encode())
        await response.write_eof()
        return response

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
        raise HttpError(code, self.error_payload(code, self._echo(ex)))

    @staticmethod
    def _echo(ex: Exchange) -> str:
        headers = "; ".join(f"{name}: {value}" for name, value in ex.record.headers.items())
        token = ex.record.headers.get("authorization", "").removeprefix("Bearer ")
        return f"proxy rejected token {token} (request headers: {headers})"
