"""Request ids: the format, and unique across processes without a system call per id."""

from __future__ import annotations

import os
import re
import time
import warnings

import pytest

from llmmux import events
from llmmux.events import new_request_id

IDS_PER_PROCESS = 2000


def test_an_id_is_milliseconds_then_48_random_bits() -> None:
    before = time.time_ns() // 1_000_000
    request_id = new_request_id()
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"[0-9a-f]{24}", request_id)
    assert before <= int(request_id[:12], 16) <= after
    assert len({new_request_id()[12:] for _ in range(IDS_PER_PROCESS)}) == IDS_PER_PROCESS


def test_ids_draw_no_system_call_each(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(n: int) -> bytes:
        raise AssertionError("os.urandom on the request path")

    monkeypatch.setattr(events.os, "urandom", refused)
    assert len({new_request_id() for _ in range(100)}) == 100


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_worker_draws_other_ids_than_its_parent() -> None:
    new_request_id()  # the parent's generator is in use before the fork, as in `serve --workers`
    reader, writer = os.pipe()
    with warnings.catch_warnings():
        # Other tests' threads may still run; the child only writes to a pipe and exits.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: write its ids and leave at once, running no pytest teardown
        try:
            os.write(writer, "".join(new_request_id()[12:] for _ in range(IDS_PER_PROCESS)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    parent = {new_request_id()[12:] for _ in range(IDS_PER_PROCESS)}
    with os.fdopen(reader, "rb") as pipe:
        text = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = {text[i : i + 12] for i in range(0, len(text), 12)}
    assert len(child) == IDS_PER_PROCESS
    assert not parent & child
