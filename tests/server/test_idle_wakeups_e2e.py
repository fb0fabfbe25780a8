"""An idle `llmmux serve --workers 2` sleeps: the supervisor until a worker exits or a signal
comes, each worker's loop only for the timers that have work (counted as the voluntary
context switches of each process's main thread, which load does not add to)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

WINDOW_S = 2.0
# Before: the supervisor polled its children 5 times a second, and the holder and two workers
# woke 110 to 150 times in two seconds (uvicorn's 0.1 s tick, the sinks' and the request log's
# batches, each worker's); now about 65 (the ledger's change feed, 4 a second with its thread's
# hand-offs, and once-a-second timers).
CHILDREN_MOST = 90


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def wakeups(pid: int) -> int:
    for line in Path(f"/proc/{pid}/task/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def test_an_idle_gateway_and_its_supervisor_sleep(tmp_path: Path) -> None:
    with FakeOpenAI() as upstream:
        config = {"providers": {"up": {"type": "openai_compatible", "base_url": upstream.url, "models": ["m"]}}}
        path = tmp_path / "llmmux.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        process = start_serve(path, port, ["--workers", "2", "--no-reload"])
        try:
            wait_healthy(port, process, limit=60)
            time.sleep(2.0)  # the start's one-off work: first health checks, ledger open
            pids = [process.pid, *children(process.pid)]
            assert len(pids) == 4  # supervisor, state holder, two workers
            before = {pid: wakeups(pid) for pid in pids}
            time.sleep(WINDOW_S)
            woke = {pid: wakeups(pid) - before[pid] for pid in pids}
        finally:
            output = stop_serve(process)  # SIGTERM: the sleeping supervisor wakes and stops its children
    assert woke[process.pid] <= 1, woke  # before: 10 in two seconds
    assert sum(woke.values()) - woke[process.pid] < CHILDREN_MOST, woke
    assert process.returncode == 0, output
