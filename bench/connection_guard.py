"""What the slowloris guard (server/connections.py) adds per request and per connection.

Drives uvicorn's httptools protocol and the guarded subclass in-process with an in-memory
transport and a minimal ASGI app, so only the protocol work is timed (no sockets, no
gateway). Run: `PYTHONPATH=src .venv/bin/python bench/connection_guard.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from llmmux.config.model import ServerConfig
from llmmux.server.connections import protocol_factory

REQUEST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmmux\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
REQUESTS_PER_CONNECTION = 200
CONNECTIONS = 50
ROUNDS = 10


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 4000)}.get(name, default)

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True


async def app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(factory: Any) -> float:
    config = uvicorn.Config(app, http="httptools", log_config=None, lifespan="off")
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for _ in range(CONNECTIONS):
        protocol = factory(config=config, server_state=state, app_state={}, _loop=loop)
        transport = MemoryTransport()
        protocol.connection_made(transport)
        for _ in range(REQUESTS_PER_CONNECTION):
            protocol.data_received(REQUEST)
            while protocol.cycle is None or not protocol.cycle.response_complete:
                await asyncio.sleep(0)
        protocol.connection_lost(None)
    return (time.perf_counter() - started) / (CONNECTIONS * REQUESTS_PER_CONNECTION) * 1e6


async def main() -> None:
    guarded = protocol_factory(ServerConfig())
    base: list[float] = []
    guard: list[float] = []
    for round_ in range(ROUNDS):  # interleaved and alternated, so drift in machine load hits both alike
        if round_ % 2:
            guard.append(await run(guarded))
            base.append(await run(HttpToolsProtocol))
        else:
            base.append(await run(HttpToolsProtocol))
            guard.append(await run(guarded))
    b, g = statistics.median(base), statistics.median(guard)
    print(f"uvicorn httptools: {b:.2f} µs/request; guarded: {g:.2f} µs/request; difference {g - b:+.2f} µs")
    print(f"({CONNECTIONS} connections x {REQUESTS_PER_CONNECTION} keep-alive requests, median of {ROUNDS} rounds)")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
