"""Log writes off the event loop: finished lines go through a bounded queue to one writer thread.

A StreamHandler writes on the thread that logged, and on a worker that is the event loop:
when stderr is a pipe nobody reads, the write blocks and so does every request. Here the
caller still formats (the CPU stays where it was; a formatting thread would hold the GIL
against the loop) and only enqueues; a QueueListener thread does the blocking writes. A
full queue drops the line and counts it, never blocks. Closing, at a clean exit, waits a
bounded time for every accepted line to be written.

    lines = LineQueue()                                    # stderr
    logging.getLogger().addHandler(QueuedLogHandler(lines))
    lines.put("a finished line\\n")                         # what RequestLog does per batch
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import sys
import threading
import time
from typing import TextIO

MAX_QUEUED_LINES = 10_000
MAX_QUEUED_CHARS = 4 * 1024 * 1024
"""Text waiting for a slow or blocked stream, past which new lines are dropped (and counted)
rather than letting memory grow without bound."""
CLOSE_WAIT_S = 5.0

__all__ = ["LineQueue", "QueuedLogHandler"]


class LineQueue:
    """Text to write to a stream, queued here and written by a QueueListener thread.

    The thread starts with the first line, and again in a forked child (a fork copies the
    queue but not the thread that empties it, and maybe a lock that thread held).
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.dropped = 0
        self.queued_chars = 0  # approximate: updated by callers and the writer thread
        self._pid = -1
        self._queue: queue.Queue[str | None] = queue.Queue(MAX_QUEUED_LINES)
        self._listener: _Writer | None = None
        self._starting = threading.Lock()

    def put(self, text: str) -> bool:
        """Queue `text` for writing, or drop it if the queue is full; never blocks on the stream."""
        if self._pid != os.getpid():
            self._start()
        if self.queued_chars > MAX_QUEUED_CHARS:
            self.dropped += 1
            return False
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            self.dropped += 1
            return False
        self.queued_chars += len(text)
        return True

    def _start(self) -> None:
        with self._starting:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(MAX_QUEUED_LINES)
            self.queued_chars = 0
            self._listener = _Writer(self._queue, self)
            self._listener.start()
            self._pid = os.getpid()

    def write(self, text: str) -> None:
        """On the writer thread: the one blocking write."""
        stream = self._stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not take the gateway down with it
        self.queued_chars -= len(text)

    def close(self, wait_s: float = CLOSE_WAIT_S) -> bool:
        """Write what was accepted, waiting at most `wait_s` for a stream that does not drain.

        Returns whether everything was written. The writer is a daemon thread, so a stream
        that never drains cannot hold the process past this wait.
        """
        listener = self._listener
        if listener is None or self._pid != os.getpid():
            return True
        deadline = time.monotonic() + wait_s
        try:
            self._queue.put(None, timeout=wait_s)
        except queue.Full:
            return False
        done = listener.finish(max(0.0, deadline - time.monotonic()))
        if done:
            self._listener, self._pid = None, -1
        return done


class _Writer(logging.handlers.QueueListener):
    """The listener thread: its queue holds finished text, so handling one is writing it."""

    def __init__(self, lines: queue.Queue[str | None], owner: LineQueue) -> None:
        super().__init__(lines)
        self._owner = owner

    def handle(self, record: logging.LogRecord | str) -> None:
        assert isinstance(record, str)
        self._owner.write(record)

    def finish(self, wait_s: float) -> bool:
        """After the sentinel was queued: wait for the thread to write up to it."""
        thread = self._thread
        if thread is not None:
            thread.join(wait_s)
            if thread.is_alive():
                return False
        self._thread = None
        return True


class QueuedLogHandler(logging.handlers.QueueHandler):
    """The root handler: formats (and masks) on the caller's thread, then only enqueues."""

    def __init__(self, lines: LineQueue) -> None:
        super().__init__(lines._queue)  # unused: emit below puts through `lines`, bounded
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.put(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """`logging.shutdown` (at exit) calls this: write what was accepted, bounded."""
        self.lines.close()
        super().close()
