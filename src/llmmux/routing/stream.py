"""An open stream whose provider is settled, watched for stalls until it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from ..errors import StreamInterrupted, UpstreamError, UpstreamTimeout
from ..events import RequestRecord
from ..pricing import FREE, Price
from ..types import ChatChunk
from .table import Candidate

StreamEnd = Callable[["ChatStream", "UpstreamError | None"], None]


class ChatStream:
    """An open stream whose first chunk has arrived, so its provider is settled.

    Iterating yields that chunk and the rest; `batches()` yields them as they arrived, one
    list per upstream read, for a writer that sends each read's events together. A failure
    after the first chunk cannot fall back any more (the client has bytes), so it surfaces
    as `StreamInterrupted`; so does a stall, when no read arrives for `stall_s` seconds.
    `on_end` runs once, however the stream ends, to settle health, limits and the request
    record: iterate to the end or call `aclose()`, or the stream holds its provider's
    concurrency slot.
    """

    def __init__(
        self,
        batches: AsyncIterator[list[ChatChunk]],
        first: list[ChatChunk],
        public: str,
        candidate: Candidate | None,
        record: RequestRecord,
        *,
        stall_s: float | None,
        on_end: StreamEnd,
        explanation: str | None = None,
        dropped: list[str] | None = None,
        collect: int | None = None,
        cache: str | None = None,
    ) -> None:
        self._batches = batches
        self.dropped = dropped or []  # parameters the provider could not honour
        self._first: list[ChatChunk] | None = first
        self._ready: list[ChatChunk] = []  # what `__anext__` hands out before it reads again, last first
        self.public = public
        self.candidate = candidate  # None for a stream replayed from the response cache
        self.provider = candidate.provider.name if candidate is not None else record.provider or ""
        self.model = candidate.model if candidate is not None else record.model or ""
        self.cache = cache  # the x-llmmux-cache response header
        # The chunks, kept for the response cache while they stay under `collect` bytes.
        self.collected: list[ChatChunk] | None = [] if collect is not None else None
        self._collect_left = collect or 0
        self.attempts = record.attempts
        self.record = record
        self.explanation = explanation
        self._stall_s = stall_s
        self._waiter: asyncio.Task[object] | None = None  # the task awaiting the upstream, while it waits
        self._waiting_since = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stalled = False
        self._on_end: StreamEnd | None = on_end
        self.price: Price = FREE  # the router sets the candidate's price, so `cost` is known at the end
        record.provider, record.model = self.provider, self.model
        record.ttft_ms = (time.perf_counter() - record.context.started_perf) * 1000
        self._note(first[:1])

    @property
    def attempt_count(self) -> int:
        return len(self.attempts) + 1

    @property
    def cost(self) -> float:
        """USD for the usage reported so far: the whole request's once the stream has ended."""
        usage = self.record.usage
        return self.price.cost(usage) if usage is not None else 0.0

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> ChatChunk:
        ready = self._ready
        if not ready:
            if self._first is not None:
                first, self._first = self._first, None
                self._ready = first[:0:-1]  # the rest of the first read; its first chunk was counted at the open
                return first[0]
            self._ready = ready = (await self._next_read())[::-1]
        chunk = ready.pop()
        self._note((chunk,))
        return chunk

    def batches(self) -> AsyncIterator[list[ChatChunk]]:
        """The chunks in the lists they arrived in, never empty; iterate one way or the other."""
        return _Batches(self)

    async def _next_batch(self) -> list[ChatChunk]:
        if self._first is not None:
            batch, self._first = self._first, None
            self._note(batch[1:])
        else:
            batch = await self._next_read()
            self._note(batch)
        return batch

    async def _next_read(self) -> list[ChatChunk]:
        """The chunks of the next upstream read, not yet counted: the record counts what is
        handed on to the client, so a client that leaves mid-read is charged for what it got."""
        try:
            return await (self._next_watched() if self._stall_s is not None else self._batches.__anext__())
        except StopAsyncIteration:
            self._finish(200, None, None)
            raise
        except UpstreamError as exc:
            self._finish(502, "stream_interrupted", exc)
            raise StreamInterrupted(f"{self.provider} failed mid-stream: {exc.message}") from exc

    async def _next_watched(self) -> list[ChatChunk]:
        """The next read's chunks, or a stall error when the upstream is silent for `stall_s` seconds.

        One timer per stream, re-armed only when it fires, watches the wait: a timeout
        context per read would cost more than the read itself.
        """
        loop = self._loop
        if loop is None:  # looked up once: per read, each lookup asks the kernel for the pid (Python 3.11)
            loop = self._loop = asyncio.get_running_loop()
        self._waiter, self._waiting_since = asyncio.current_task(loop), loop.time()
        if self._watchdog is None:
            self._watchdog = loop.call_at(self._waiting_since + self._stall_s, self._check_stall)  # type: ignore[operator]
        try:
            return await self._batches.__anext__()
        except asyncio.CancelledError:
            if not self._stalled or self._waiter is None:
                raise
            self._waiter.uncancel()
            # The cancellation closed the upstream read, which closed the upstream stream.
            error = UpstreamTimeout(f"{self.provider} stalled: no data for {self._stall_s:g} s", provider=self.provider)
            self._finish(502, "stream_stalled", error)
            raise StreamInterrupted(f"{self.provider} stalled mid-stream: no data for {self._stall_s:g} s") from error
        finally:
            self._waiter = None

    def _check_stall(self) -> None:
        assert self._stall_s is not None
        loop = asyncio.get_running_loop()
        if self._waiter is not None and loop.time() - self._waiting_since >= self._stall_s:
            self._stalled = True
            self._watchdog = None
            self._waiter.cancel()
            return
        due = (self._waiting_since if self._waiter is not None else loop.time()) + self._stall_s
        self._watchdog = loop.call_at(due, self._check_stall)

    def _note(self, batch: Sequence[ChatChunk]) -> None:
        record = self.record
        for chunk in batch:
            if self.collected is not None:
                self._keep(chunk)
            if chunk.usage is not None:
                record.usage = chunk.usage
            for choice in chunk.choices:  # what accounting estimates from when a backend sends no usage
                text = choice.delta.content
                if text:
                    record.output_chars += len(text)
                    if record.output is not None:
                        record.output.append(text)

    def _keep(self, chunk: ChatChunk) -> None:
        # A rough size: what the chunk carries; the exact one is checked when it is stored.
        size = len(chunk.raw or b"") + sum(
            len(c.delta.content or "") + len(c.delta.reasoning or "") + 64 for c in chunk.choices
        )
        self._collect_left -= size
        if self._collect_left < 0:
            self.collected = None  # too big to cache: stop holding it
        else:
            self.collected.append(chunk)  # type: ignore[union-attr]

    def _finish(self, status: int, error_kind: str | None, error: UpstreamError | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        on_end, self._on_end = self._on_end, None
        if on_end is None:
            return
        self.record.status, self.record.error_kind = status, error_kind
        on_end(self, error)

    @property
    def finished(self) -> bool:
        return self._on_end is None

    async def aclose(self) -> None:
        """Release the upstream; a stream closed before its end was abandoned by the client."""
        self._finish(499, "client_closed", None)
        aclose = getattr(self._batches, "aclose", None)
        if aclose is not None:
            await aclose()


class _Batches:
    """`ChatStream.batches()`: its `__anext__` hands back the stream's own coroutine, so a
    read costs no extra frame."""

    __slots__ = ("_stream",)

    def __init__(self, stream: ChatStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _Batches:
        return self

    def __anext__(self) -> Awaitable[list[ChatChunk]]:
        return self._stream._next_batch()
