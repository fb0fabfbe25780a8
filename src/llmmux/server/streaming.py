"""Sending an answer to a client, whatever its API: one loop for every door's streams, one
path for its whole answers.

Each door supplies how a chunk, the end and a failure look in its format; this module owns
the rest: the routing headers, noticing a client that went away, releasing the upstream,
and reporting a failure after the status was sent as the door's in-band error. A whole
answer is written before its accounting runs (`send_answer`): at one connection the client
would otherwise wait for the health report, the limits and the published record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import LLMMuxError
from ..events import CallContext
from ..router import Router
from ..routing import ChatStream, Completion, Embeddings
from ..types import ChatChunk, ChatRequest
from .http import JSON_HEADERS, CancelOnDisconnect, Request, Send, header_list, send_bytes

T = TypeVar("T")
WATCH_ANSWER_AFTER_S = 0.05
"""A whole answer not ready by then is watched for its client leaving; quicker ones pay a timer only."""


def routing_headers(done: Completion | ChatStream | Embeddings, request_id: str) -> dict[str, str]:
    headers = {
        "x-llmmux-provider": done.provider,
        "x-llmmux-model": done.model,
        "x-llmmux-attempts": str(done.attempt_count),
        "x-request-id": request_id,
    }
    if done.explanation is not None:
        headers["x-llmmux-route"] = done.explanation  # routing_strategy.debug_header: true
    if done.cache is not None:  # on a route that caches
        headers["x-llmmux-cache"] = done.cache  # hit, miss, bypass or "semantic-hit; score=0.97"
    if done.dropped:
        # The answer is still useful, but the client should know which settings it ignored.
        headers["x-llmmux-dropped-params"] = ", ".join(done.dropped)
    return headers


async def send_answer(
    router: Router,
    chat: ChatRequest,
    context: CallContext,
    request: Request,
    send: Send,
    encode: Callable[[Completion], bytes],
) -> None:
    """Route a non-streaming chat, write the reply `encode` makes of it, then settle its accounting.
    A client gone before the answer cancels it where the route is local (see `unless_left`)."""
    done = await unless_left(
        request, router.chat(chat, context=context, settle_later=True), lambda: runs_locally(router, chat, context)
    )
    if done is None:
        return  # the client left: the pipeline recorded it (499, client_closed)
    try:
        headers = header_list(JSON_HEADERS, routing_headers(done, request.request_id))
        await send_bytes(send, 200, encode(done), headers)
    finally:
        done.settle()  # however the write went: every answer is accounted for once


async def unless_left(request: Request, answer: Awaitable[T], local: Callable[[], bool]) -> T | None:
    """`await answer`, or None where its client left first and `local()` says so at that moment.

    For every door's whole answers. Cancelling stops a local model generating and frees its
    slot; a cloud upstream bills a request whether or not anyone reads the reply, so there
    (`local()` false) the answer is still taken and accounted for. Watching starts only once
    the answer takes `WATCH_ANSWER_AFTER_S`: a quick one pays for a timer, not a task."""
    watch = CancelOnDisconnect(request.receive, after=WATCH_ANSWER_AFTER_S, cancel_if=local)
    watch.start()  # not `async with`: that costs 2 µs more a request
    try:
        return await answer
    except asyncio.CancelledError:
        if watch.stop(cancelled=True):
            return None  # every routed call under `answer` recorded itself (499, client_closed)
        raise
    finally:
        watch.stop()


def runs_locally(router: Router, chat: ChatRequest, context: CallContext) -> bool:
    """Whether every candidate of the route `chat` takes is a local model (asked at a disconnect,
    not per request): resolved as the pipeline does, tag and capability routes included, since
    a tag may send a local model's name to a cloud API."""
    try:
        return all(candidate.local for candidate in router.pipeline.planner.resolve(chat, context.tags).candidates)
    except LLMMuxError:
        return False


async def send_stream(
    stream: ChatStream,
    request: Request,
    send: Send,
    content_headers: list[tuple[bytes, bytes]],
    *,
    encode: Callable[[ChatChunk], bytes],
    finish: Callable[[], bytes],
    fail: Callable[[LLMMuxError], bytes],
    start: bytes = b"",
) -> None:
    """Stream `stream` to the client; `encode` may return b"" for a chunk the client should not see.

    The chunks of one upstream read leave in one body message: one trip through the ASGI
    layers and one socket write for what arrived together."""
    headers = header_list(content_headers, routing_headers(stream, request.request_id))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if start:
        await send({"type": "http.response.body", "body": start, "more_body": True})
    async with CancelOnDisconnect(request.receive):
        try:
            async for batch in stream.batches():
                body = encode(batch[0]) if len(batch) == 1 else b"".join([encode(chunk) for chunk in batch])
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
        except LLMMuxError as exc:
            # Bytes are out and the status is sent: the failure travels in-band.
            body = request.masker.scrub_bytes(fail(exc))
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        finally:
            await stream.aclose()
        await send({"type": "http.response.body", "body": finish(), "more_body": False})
