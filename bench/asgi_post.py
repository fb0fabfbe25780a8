"""One chat request driven straight into an ASGI app, no socket: what the in-process benchmarks
send. Imports nothing of llmmux, so a harness can load it before choosing which tree to run."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


async def post_chat(app: Any, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """POST `body` to /v1/chat/completions; raises unless the answer is a 200."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the client stays connected
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"status {message['status']}")

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers],
    }
    await app(scope, receive, send)
