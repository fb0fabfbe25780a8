"""Two thousand streams open at once through `llmmux serve --workers 2`: all complete, none stalls.

The lighter sibling of `bench/many_streams.py` (10,000 streams): every stream is open at the
same time while a paced upstream trickles five events into each, so the gateway holds
4,000 sockets (a client's and an upstream's per stream) over two workers, started under
the common soft limit of 1,024 open files, which `llmmux serve` lifts to the hard limit.
Once the streams are over, each worker trims the memory they left (server/memory_trim.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from support.gateway import free_port
from support.many_streams import run_streams
from support.serve import wait_healthy
from upstreams.paced_sse import PacedSSE

STREAMS = 2_000
EVENTS = 5
PACE_S = 0.25
COMMON_SOFT_LIMIT = 1024
TRIM_LOG = "memory after a burst"
TRIM_WITHIN_S = 20.0  # quiet for 2 s, then the next once-a-second look; generous for a shared machine

CONFIG = """
server: {{max_connections_per_client: 0}}
providers:
  paced:
    type: openai_compatible
    base_url: http://127.0.0.1:{port}/v1
    max_connections: {streams}
    models: [paced-model]
"""


@contextlib.contextmanager
def soft_open_file_limit(limit: int) -> Iterator[None]:
    """Processes started inside inherit `limit` (this one needs more for its own end of the sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < STREAMS * 3:
        pytest.skip(f"the hard open-file limit ({hard}) is below what {STREAMS} streams need")
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


pytestmark = pytest.mark.timeout(120)  # 10 s on a quiet machine; a shared CI box is slower


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[PacedSSE, int]]:
    server = PacedSSE(EVENTS, PACE_S)
    port = await server.start()
    try:
        yield server, port
    finally:
        await server.close()


async def test_two_thousand_concurrent_streams_complete_through_two_workers(
    upstream: tuple[PacedSSE, int], tmp_path: Path
) -> None:
    server, upstream_port = upstream
    config = tmp_path / "llmmux.yaml"
    config.write_text(CONFIG.format(port=upstream_port, streams=STREAMS))
    port = free_port()
    log = tmp_path / "gateway.log"
    # Its output to a file: 2,000 request log lines would fill a pipe nobody reads while it runs.
    with soft_open_file_limit(COMMON_SOFT_LIMIT), log.open("wb") as out:
        command = [sys.executable, "-m", "llmmux", "serve", "--config", str(config), "--port", str(port)]
        process = subprocess.Popen([*command, "--workers", "2"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(port, process)
        result = await run_streams(port, STREAMS, model="paced-model", events=EVENTS, wave=500, timeout_s=60)
        # The burst is over: each worker gives back what it no longer needs within seconds.
        deadline = time.monotonic() + TRIM_WITHIN_S
        while log.read_text(errors="replace").count(TRIM_LOG) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = log.read_text(errors="replace")
    assert not result.errors, (
        f"{len(result.errors)} streams failed, first: {result.errors[:3]}; gateway: {output[-2000:]}"
    )
    assert result.completed == STREAMS and result.events == STREAMS * EVENTS
    assert server.served >= STREAMS  # and the health probes of the two workers
    # Open together: the last wave connected long before the first streams ended.
    assert result.most_open >= STREAMS * 0.9
    # No stall: a client never waited much longer than the upstream's own pace between reads
    # (bounded generously: the machine is shared, and the first event waits for the whole wave).
    assert result.longest_gap_s < 15, f"a stream was silent for {result.longest_gap_s:.1f} s"
    trims = [line for line in output.splitlines() if TRIM_LOG in line]
    assert len(trims) >= 2, f"the workers did not trim after the burst: {output[-2000:]}"
