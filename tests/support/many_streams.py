"""Thousands of streaming chat requests held open at once against a gateway: what each one saw.

Each stream is its own connection (raw asyncio streams: an SDK client per stream would
cost more than the gateway it measures). Connections open in waves of `wave` a tick so
the listen backlog is not the thing tested; every stream is then open at the same time
while a paced upstream (`tests/upstreams/paced_sse.py`) trickles its events.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

TERMINATOR = b"0\r\n\r\n"


@dataclass
class StreamsResult:
    """What the streams saw: how many completed whole, the errors, the longest silence, the wall time."""

    completed: int = 0
    errors: list[str] = field(default_factory=list)
    events: int = 0
    longest_gap_s: float = 0.0
    wall_s: float = 0.0
    most_open: int = 0
    _open: int = 0


def _request(port: int, model: str) -> bytes:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _one(port: int, request: bytes, events: int, result: StreamsResult, timeout_s: float) -> None:
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            result._open += 1
            result.most_open = max(result.most_open, result._open)
            writer.write(request)
            received, last = b"", time.monotonic()
            while not received.endswith(TERMINATOR):
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError("closed before the end of the stream")
                now = time.monotonic()
                result.longest_gap_s = max(result.longest_gap_s, now - last)
                last = now
                received += data
                if len(received) >= 12 and not received.startswith(b"HTTP/1.1 200"):
                    break  # a refusal (a 503, say) has a length, not a stream's end
        if not received.startswith(b"HTTP/1.1 200"):
            raise ValueError(received[:200].decode("latin-1"))
        seen = received.count(b"data: {")
        if seen != events or b"data: [DONE]" not in received:
            raise ValueError(f"{seen} of {events} events")
        result.completed += 1
        result.events += seen
    except Exception as exc:  # every failure is counted, none ends the run
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        if writer is not None:
            result._open -= 1
            writer.close()


async def run_streams(
    port: int, count: int, *, model: str, events: int, wave: int = 500, every_s: float = 0.05, timeout_s: float = 120.0
) -> StreamsResult:
    """Open `count` streams (`wave` new connections every `every_s`) and wait for all of them."""
    result = StreamsResult()
    request = _request(port, model)
    started = time.monotonic()
    tasks = []
    for first in range(0, count, wave):
        tasks += [
            asyncio.ensure_future(_one(port, request, events, result, timeout_s))
            for _ in range(min(wave, count - first))
        ]
        await asyncio.sleep(every_s)
    await asyncio.gather(*tasks)
    result.wall_s = time.monotonic() - started
    return result
