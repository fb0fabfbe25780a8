"""The legacy completions surface: `POST /v1/completions`, on any backend.

A prompt becomes one user message and the request goes to chat; a list of prompts becomes
one chat request per prompt, run at once, their choices numbered as OpenAI numbers them.
Where every candidate of the route takes completions natively (`Provider.native_completions`:
an OpenAI-format provider with `completions: native`), the body goes to the upstream's own
/v1/completions instead (token prompts included).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import TypeVar

from ..errors import LLMMuxError
from ..events import ClientApi
from ..router import Router
from ..routing import ChatStream, Route
from ..types import ChatChunk, ChatRequest
from ..wire import completions as wire
from ..wire import openai as openai_wire
from .amplification import check_choices
from .http import JSON_HEADERS, SSE_HEADERS, CancelOnDisconnect, Request, Send, header_list, send_bytes
from .streaming import routing_headers, runs_locally, unless_left

T = TypeVar("T")
MERGE_BUFFER = 16
"""Chunks buffered per part when several streams are merged; upstreams wait beyond that."""


async def completions(router: Router, request: Request, send: Send) -> None:
    completion = wire.decode_request(await request.json())
    check_choices(completion.n, completion.prompt_count, router.config.server)
    parts = plan(router.pipeline.route_for(completion.chat), completion)
    parent = request.context(ClientApi.COMPLETIONS)
    # Several prompts are several routed calls: each its own record, tied to the client's id.
    contexts = [parent] if len(parts) == 1 else [parent.child(i) for i in range(1, len(parts) + 1)]
    if not completion.stream:
        calls = gather_all([router.chat(chat, context=c) for (_, chat), c in zip(parts, contexts, strict=True)])
        # A client gone cancels every prompt's call where the route is local; each records its 499.
        dones = await unless_left(request, calls, lambda: runs_locally(router, parts[0][1], contexts[0]))
        if dones is None:
            return
        replies = [(first, done.response) for (first, _), done in zip(parts, dones, strict=True)]
        body = wire.encode_response(completion, replies, dones[0].public)
        await send_bytes(send, 200, body, header_list(JSON_HEADERS, routing_headers(dones[0], request.request_id)))
        return
    streams = await gather_all(
        [router.open_stream(chat, context=c) for (_, chat), c in zip(parts, contexts, strict=True)],
        release=_close_stream,
    )
    firsts = [first for first, _ in parts]
    await _send_stream(wire.StreamEncoder(completion, streams[0].public), firsts, streams, request, send)


def plan(route: Route, completion: wire.CompletionRequest) -> list[tuple[int, ChatRequest]]:
    """The requests to make, each with the index of its first choice."""
    providers = [c.provider for c in route.candidates]
    if all(p.native_completions for p in providers):  # each provider says what it takes
        return [(0, wire.native_request(completion))]
    # `n` is native only where every candidate can return several choices.
    return wire.chat_parts(completion, native_n=all(p.wire == openai_wire.WIRE for p in providers))


async def _send_stream(
    encoder: wire.StreamEncoder, firsts: list[int], streams: list[ChatStream], request: Request, send: Send
) -> None:
    headers = header_list(SSE_HEADERS, routing_headers(streams[0], request.request_id))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    async with CancelOnDisconnect(request.receive):
        try:
            async with contextlib.aclosing(merge(streams)) as chunks:
                async for part, chunk in chunks:
                    body = encoder.encode(firsts[part], chunk)
                    if body:
                        await send({"type": "http.response.body", "body": body, "more_body": True})
        except LLMMuxError as exc:
            body = request.masker.scrub_bytes(encoder.error(exc))
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        finally:
            for stream in streams:
                await stream.aclose()
        await send({"type": "http.response.body", "body": encoder.finish(), "more_body": False})


async def merge(streams: Sequence[ChatStream]) -> AsyncGenerator[tuple[int, ChatChunk], None]:
    """(part, chunk) pairs from every stream as they arrive; the first failure ends the merge."""
    if len(streams) == 1:
        async for chunk in streams[0]:
            yield 0, chunk
        return
    queue: asyncio.Queue[tuple[int, ChatChunk | Exception | None]] = asyncio.Queue(MERGE_BUFFER * len(streams))

    async def pump(part: int, stream: ChatStream) -> None:
        try:
            async for chunk in stream:
                await queue.put((part, chunk))
        except Exception as exc:  # handed to the consumer, which raises it
            await queue.put((part, exc))
            return
        await queue.put((part, None))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            part, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield part, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def gather_all(calls: Sequence[Awaitable[T]], release: Callable[[T], Awaitable[None]] | None = None) -> list[T]:
    """Run `calls` at once; on the first failure cancel the rest, release what succeeded, and raise it."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        if release is not None:
            for result in results:
                if not isinstance(result, BaseException):
                    await release(result)
        raise


async def _close_stream(stream: ChatStream) -> None:
    await stream.aclose()
