"""The request log for operators: search, one request in full, a live tail, and CSV.

GET /admin/requests?limit=50&before=<id>&key=&model=&provider=&status=&error_kind=&since=1h&until=&q=words
GET /admin/requests/{request_id}      the ledger row, its failed attempts and (when logged) its bodies
GET /admin/requests/stream            server-sent events: one `request` event per finished request
GET /admin/usage?...&format=csv       the usage report as CSV

The tail subscribes to the router's events only while someone watches: with nobody
watching it costs requests nothing; while watched, one small dict per request is queued
(a slow watcher loses events rather than holding memory).

With several workers (`--workers`, the holder) or instances (Redis), a watcher's process
announces on `WATCH_CHANNEL` every `WATCH_EVERY_S` that it is watching; every other process
then subscribes too and forwards its finished requests on `TAIL_CHANNEL`, batched every
`FORWARD_DELAY_S`, until `WATCH_TTL_S` passes without an announcement. So the tail shows the
whole gateway, and nobody pays for it while nobody watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import InvalidRequest, ServerStopping
from ..events import Events, RequestRecord
from ..ledger.store import RequestFilters
from ..periods import parse_moment
from ..shared.client import Shared
from .http import SSE_HEADERS, CancelOnDisconnect, Request, Send

TAIL_QUEUE = 1000
KEEPALIVE_S = 15.0
TAIL_CHANNEL = "console.tail"
WATCH_CHANNEL = "console.tail.watch"
WATCH_EVERY_S = 2.0
WATCH_TTL_S = 3 * WATCH_EVERY_S  # a missed announcement or two does not stop the forwarding
FORWARD_DELAY_S = 0.1  # one message per this much time, however many requests finish in it
MAX_FORWARD = 1000  # a batch's events beyond this are dropped (and counted)
CSV_COLUMNS = (
    "group",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cost_usd",
    "p50_latency_ms",
    "p95_latency_ms",
    "estimated",
)


def filters(query: dict[str, str]) -> RequestFilters:
    status = query.get("status")
    if status is not None and not (status.isdigit() and len(status) == 3):
        raise InvalidRequest("'status' must be an HTTP status such as 200 or 429.", param="status")
    now = time.time()
    moments: dict[str, float | None] = {}
    for name in ("since", "until"):
        text = query.get(name)
        try:
            moments[name] = parse_moment(text, now, future=False) if text else None
        except ValueError as exc:
            raise InvalidRequest(str(exc), param=name) from None
    return RequestFilters(
        provider=query.get("provider") or None,
        status=int(status) if status else None,
        error_kind=query.get("error_kind") or None,
        since=moments["since"],
        until=moments["until"],
        text=(query.get("q") or "").strip() or None,
    )


def usage_csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = ("group", "name", *CSV_COLUMNS[1:]) if report["by"] == "key" else CSV_COLUMNS
    writer.writerow(columns)
    for row in report["rows"]:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue().encode()


def _cell(value: Any) -> Any:
    # A cell a spreadsheet would run as a formula (a key or model named "=HYPERLINK(...)") is quoted.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def tail_event(record: RequestRecord, instance: str | None = None) -> dict[str, Any]:
    """The few fields the live tail shows; built on the hot path, so nothing more.

    `instance`: the worker or instance that served it, when there are several.
    """
    usage = record.usage
    return {
        "request_id": record.context.request_id,
        "instance": instance,
        "ts": record.context.started,
        "client_api": record.context.client_api,
        "key_id": record.context.key_id,
        "public_model": record.public_model,
        "provider": record.provider,
        "model": record.model,
        "stream": record.stream,
        "status": record.status,
        "error_kind": record.error_kind,
        "latency_ms": round(record.latency_ms, 1),
        "ttft_ms": None if record.ttft_ms is None else round(record.ttft_ms, 1),
        "total_tokens": usage.total_tokens if usage is not None else 0,
        "cost_usd": record.cost_usd,
        "attempts": len(record.attempts) + (1 if record.provider else 0),
    }


class RequestTail:
    """Fans finished requests out to the open live tails, this process's and (through `shared`) the others'."""

    def __init__(
        self, events: Events, shared: Shared | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._events = events
        self._shared = shared
        self._clock = clock
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._remove: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._announcer: asyncio.Task[None] | None = None
        self._watched_elsewhere_until = 0.0
        self._outbox: list[dict[str, Any]] = []
        self.ended = False
        self.dropped = 0
        if shared is not None:
            shared.listen(WATCH_CHANNEL, self._on_watch)
            shared.listen(TAIL_CHANNEL, self._on_forwarded)

    @property
    def watchers(self) -> int:
        return len(self._queues)

    def open(self) -> asyncio.Queue[dict[str, Any] | None]:
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(TAIL_QUEUE)
        self._queues.add(queue)
        self._listen()
        if self._shared is not None and self._announcer is None:
            self._announcer = asyncio.create_task(self._announce(), name="llmmux-tail-announce")
        return queue

    def _listen(self) -> None:
        if self._remove is None:
            self._remove = self._events.subscribe(self._on_finish)

    def _stop_listening_if_unwatched(self) -> None:
        if self._remove is not None and not self._queues and self._clock() >= self._watched_elsewhere_until:
            self._remove()
            self._remove = None

    async def _announce(self) -> None:
        assert self._shared is not None
        while True:
            self._shared.publish(WATCH_CHANNEL, b"")
            await asyncio.sleep(WATCH_EVERY_S)

    def _on_watch(self, sender: str, payload: bytes) -> None:
        """Another process has a tail open: forward this one's requests to it for a while."""
        assert self._shared is not None
        if sender != self._shared.instance:
            self._watched_elsewhere_until = self._clock() + WATCH_TTL_S
            self._loop = self._loop or asyncio.get_running_loop()
            self._listen()

    def _on_forwarded(self, sender: str, payload: bytes) -> None:
        assert self._shared is not None
        if sender == self._shared.instance or not self._queues:
            return
        try:
            events = msgspec.msgpack.decode(payload, type=list[dict[str, Any]])
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        for event in events:
            self._deliver(event)

    def _forward(self) -> None:
        batch, self._outbox = self._outbox, []
        if batch and self._shared is not None:
            self._shared.publish(TAIL_CHANNEL, msgspec.msgpack.encode(batch))

    def end_all(self) -> None:
        """The server is stopping: end every tail (it waits for open responses), and refuse new ones.

        Safe to call from a signal handler: the work is handed to the event loop.
        """
        self.ended = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)  # after what is queued: those events still go out

    def close(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        self._queues.discard(queue)
        if not self._queues and self._announcer is not None:
            self._announcer.cancel()
            self._announcer = None
        self._stop_listening_if_unwatched()

    def _on_finish(self, record: RequestRecord) -> None:
        event = tail_event(record, self._shared.instance if self._shared is not None else None)
        self._deliver(event)
        if self._clock() < self._watched_elsewhere_until:
            if len(self._outbox) >= MAX_FORWARD:
                self.dropped += 1
                return
            if not self._outbox and self._loop is not None:
                self._loop.call_later(FORWARD_DELAY_S, self._forward)
            self._outbox.append(event)
        else:
            self._stop_listening_if_unwatched()

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue in self._queues:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped += 1

    async def serve(self, request: Request, send: Send, scrub: Callable[[str], str]) -> None:
        """Stream events until the client leaves; a comment every KEEPALIVE_S keeps proxies from closing it."""
        if self.ended:
            raise ServerStopping("The server is shutting down.")
        queue = self.open()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await send({"type": "http.response.body", "body": b": tail open\n\n", "more_body": True})
            async with CancelOnDisconnect(request.receive):
                while True:
                    try:
                        event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        await send({"type": "http.response.body", "body": b": keepalive\n\n", "more_body": True})
                        continue
                    if event is None:
                        return
                    # Names come from clients: masked here, off the hot path.
                    data = scrub(msgspec.json.encode(event).decode())
                    body = f"event: request\ndata: {data}\n\n".encode()
                    await send({"type": "http.response.body", "body": body, "more_body": True})
        finally:
            self.close(queue)
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
