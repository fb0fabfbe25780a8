"""One socket write per loop step (server/coalesce.py), alone and under the server's own protocol."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from llmmux.config.model import ServerConfig
from llmmux.server.coalesce import FLUSH_BYTES, CoalescingTransport
from llmmux.server.connections import ClientCounts, GuardedHttpToolsProtocol


class Socket:
    """The transport under test's socket: records each write, and how the connection ended."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.ended = ""

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.ended = "closed"

    def abort(self) -> None:
        self.ended = "aborted"

    def write_eof(self) -> None:
        self.ended = "eof"

    def is_closing(self) -> bool:
        return bool(self.ended)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_protocol(self, protocol: Any) -> None: ...


def coalescing() -> tuple[Socket, CoalescingTransport]:
    socket = Socket()
    return socket, CoalescingTransport(socket, asyncio.get_running_loop())  # type: ignore[arg-type]


async def test_writes_in_one_loop_step_leave_as_one() -> None:
    socket, transport = coalescing()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.write(bytearray(b"{}"))
    assert socket.writes == [] and transport.get_write_buffer_size() == 21
    await asyncio.sleep(0)
    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert socket.writes[1:] == [b"next"]  # a later step: its own write


async def test_a_large_burst_goes_out_at_once_so_flow_control_sees_it() -> None:
    socket, transport = coalescing()
    transport.write(b"x" * (FLUSH_BYTES - 1))
    assert socket.writes == []
    transport.write(b"y")
    assert [len(w) for w in socket.writes] == [FLUSH_BYTES]


async def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    socket, transport = coalescing()
    transport.write(b"bye")
    transport.close()
    assert socket.writes == [b"bye"] and socket.ended == "closed"
    socket, transport = coalescing()
    transport.write(b"half")
    transport.write_eof()
    assert socket.writes == [b"half"] and socket.ended == "eof"
    socket, transport = coalescing()
    transport.write(b"late")
    socket.ended = "reset by the client"  # the connection went before the held write left
    await asyncio.sleep(0)
    assert socket.writes == []
    socket, transport = coalescing()
    transport.write(b"lost")
    transport.abort()
    await asyncio.sleep(0)
    assert socket.writes == [] and socket.ended == "aborted"


def _protocol(app: Any, **options: Any) -> tuple[GuardedHttpToolsProtocol, Socket]:
    """`options`: more of uvicorn's Config (`access_log=False`, as `llmmux serve` runs it)."""
    config = Config(app, http="httptools", lifespan="off", log_config=None, **options)
    config.load()
    protocol = GuardedHttpToolsProtocol(
        config=config,
        server_state=ServerState(),
        app_state={},
        settings=ServerConfig(),
        counts=ClientCounts(0),
    )
    socket = Socket()
    protocol.connection_made(socket)  # type: ignore[arg-type]
    return protocol, socket


async def _answered(protocol: GuardedHttpToolsProtocol, socket: Socket) -> None:
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(5):
        while not socket.writes or not socket.writes[-1].endswith((b"0\r\n\r\n", b"}")):
            await asyncio.sleep(0.001)


async def test_a_json_reply_is_one_socket_write() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    protocol, socket = _protocol(app)
    await _answered(protocol, socket)
    assert len(socket.writes) == 1
    assert socket.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and socket.writes[0].endswith(b"\r\n\r\n{}")


@pytest.mark.parametrize("reads", [1, 3])
async def test_stream_events_of_one_upstream_read_are_one_socket_write(reads: int) -> None:
    """20 events arrive in `reads` bursts (upstream reads): the client gets one write per burst, after the head's."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0.01)  # the upstream's first byte comes later than the head
        for burst in range(reads):
            for _ in range(20 // reads + (burst == 0) * (20 % reads)):
                await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
            await asyncio.sleep(0.01)  # the next upstream read
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    protocol, socket = _protocol(app)
    await _answered(protocol, socket)
    body = b"".join(socket.writes[1:])
    assert body.count(b"data: {}") == 20 and body.endswith(b"0\r\n\r\n")
    assert len(socket.writes) == 1 + reads + 1  # head, one per burst, the end
