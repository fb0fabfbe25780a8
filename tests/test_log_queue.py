"""The log writer thread: callers never block on the stream, a full queue drops and counts,
closing writes what was accepted (bounded), and a forked child gets a writer of its own."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import warnings

import pytest

from llmmux import log_queue
from llmmux.log_queue import LineQueue, QueuedLogHandler


class Blocked(io.StringIO):
    """A stream whose writes wait until released, like a pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait(10)
        return super().write(text)


def test_a_blocked_stream_never_blocks_the_caller_and_a_full_queue_drops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_queue, "MAX_QUEUED_LINES", 100)
    stream = Blocked()
    lines = LineQueue(stream)
    handler = QueuedLogHandler(lines)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("llmmux.test.queue")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        started = time.monotonic()
        for i in range(300):
            logger.warning("line %d", i)
        assert time.monotonic() - started < 2  # nothing waited on the stream
        assert 300 - 101 <= lines.dropped < 300  # 100 queued (and one in the writer's hands)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        stream.release.set()
        handler.close()
    written = stream.getvalue().splitlines()
    assert written[:2] == ["line 0", "line 1"] and len(written) == 300 - lines.dropped


def test_close_writes_every_accepted_line() -> None:
    stream = io.StringIO()
    lines = LineQueue(stream)
    for i in range(1000):
        assert lines.put(f"{i}\n")
    assert lines.close() is True
    assert stream.getvalue().splitlines() == [str(i) for i in range(1000)]


def test_close_gives_up_on_a_stream_that_never_drains() -> None:
    stream = Blocked()
    lines = LineQueue(stream)
    lines.put("stuck\n")
    started = time.monotonic()
    assert lines.close(wait_s=0.3) is False
    assert time.monotonic() - started < 3
    stream.release.set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_writes_through_a_writer_of_its_own() -> None:
    reader, writer = os.pipe()
    out = os.fdopen(writer, "w")
    lines = LineQueue(out)
    lines.put("parent\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the parent's writer thread runs
        pid = os.fork()
    if pid == 0:  # the child: its copy of the queue has no thread emptying it
        code = 1
        try:
            lines.put("child\n")
            code = 0 if lines.close() else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lines.close() is True
    out.close()
    with os.fdopen(reader) as pipe:
        assert sorted(pipe.read().splitlines()) == ["child", "parent"]
