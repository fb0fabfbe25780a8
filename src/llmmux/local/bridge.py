"""From blocking engines to the event loop: threads that stream, and slots with a bounded queue.

Engines generate in native code that blocks its thread, so every call runs in an executor
and hands each payload to the loop as it is produced. Nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable

from .errors import busy

Emit = Callable[[bytes], bool]
"""Called on the engine's thread with each payload; returns True to stop generating."""

Producer = Callable[[Emit], None]

_END = object()


class ThreadStream:
    """Runs `produce(emit)` on an executor thread and yields every payload it emits.

    Closing the stream early (a client went away) makes the next `emit` return True, which
    engines take as "stop": generation ends at the next token. `done` completes when the
    thread has returned, whatever happened, so resources are released only then. Cancelled
    with a reason (the server is stopping), the consumer gets that error once the thread
    has stopped, rather than an ordinary end.
    """

    def __init__(self, produce: Producer, executor: concurrent.futures.Executor) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._stop = threading.Event()
        self._reason: Exception | None = None
        self.done: asyncio.Future[None] = self._loop.run_in_executor(executor, self._run, produce)

    def _run(self, produce: Producer) -> None:
        try:
            produce(self._emit)
        except BaseException as exc:  # handed to the consumer, who raises it in its own task
            self._put(exc)
        finally:
            self._put(_END)

    def _emit(self, payload: bytes) -> bool:
        if self._stop.is_set():
            return True
        self._put(payload)
        return False

    def _put(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stop.set()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while True:
            item = await self._queue.get()
            if item is _END:
                # Whatever waits on the thread (its slot, the model's lease) is released by
                # callbacks of `done`; let them run before the consumer carries on.
                await self.done
                await asyncio.sleep(0)
                if self._reason is not None:
                    raise self._reason
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item

    def cancel(self, reason: Exception | None = None) -> None:
        """Ask the engine to stop at its next payload; with `reason`, the consumer then raises it."""
        if reason is not None and not self._stop.is_set():
            self._reason = reason
        self._stop.set()


class Slots:
    """At most `size` concurrent calls into one model, and at most `max_waiting` queued behind them.

    Past the queue a request is refused at once with a Retry-After, the signal for a
    client (or llmmux's own fallback) to go elsewhere, instead of piling up unboundedly.
    """

    def __init__(self, name: str, size: int, max_waiting: int, retry_after: float, provider: str) -> None:
        self.name = name
        self.size = size
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        self.provider = provider
        self.active = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def enter(self) -> None:
        if self.active < self.size and not self._waiters:
            self.active += 1
            return
        if len(self._waiters) >= self.max_waiting:
            raise busy(
                self.provider,
                f"model '{self.name}' is busy: {self.active} requests running and {len(self._waiters)} queued",
                self.retry_after,
            )
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif not waiter.cancelled():  # handed a slot just as we were cancelled: pass it on
                self.leave()
            raise

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self.active -= 1
