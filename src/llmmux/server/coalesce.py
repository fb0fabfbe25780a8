"""One socket write per turn of the event loop: a response's head and body, a stream's burst of events.

uvicorn writes a response's head, then each body message, straight to the transport, and
uvloop sends each write at once: a JSON reply costs two `send` syscalls, and a stream
costs one per event even when all of an upstream read's events are ready together. The
syscall, not the bytes, is the cost (bench/README.md, "Where the time goes").

`CoalescingTransport` sits between uvicorn's protocol and the socket's transport. Writes
made during one step of the loop are held and sent together by a callback that runs
after the step: the events that one upstream read produced, rewritten one by one by the
door, leave in one write. Nothing waits for more data: the callback runs before the loop
polls the sockets again, so no latency is added. A burst past `FLUSH_BYTES` is sent at
once, so flow control (pause_writing) still sees a large response as it is written.

    transport = CoalescingTransport(socket_transport, loop)
    transport.write(head); transport.write(body)   # held
    ...                                            # the loop step ends: one write of head + body
"""

from __future__ import annotations

import asyncio
from typing import Any

FLUSH_BYTES = 64 * 1024
"""Held bytes past which a write goes out at once (the size of one socket read upstream)."""


class CoalescingTransport:
    """A transport whose writes in one loop step leave as one; every other call goes to `transport`."""

    __slots__ = ("_held", "_loop", "_scheduled", "_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._held.append(bytes(data) if not isinstance(data, bytes) else data)
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush_later)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush_later(self) -> None:
        self._scheduled = False
        self.flush()

    def write_now(self, data: bytes) -> None:
        """Send what is held and `data` at once, in one write: the last bytes of a reply.

        No flush is scheduled for them, so a whole reply written this way costs the loop no
        callback after its step."""
        if self._held:
            self._held.append(data)
            self.flush()
        elif data and not self.transport.is_closing():
            self.transport.write(data)

    def flush(self) -> None:
        """Send what is held now."""
        held = self._held
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        self._held = []
        self._size = 0
        if not self.transport.is_closing():  # gone since the write was held: as a write to it then would be
            self.transport.write(data)

    # -- closing: what was written goes first, unless the connection is aborted --

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self.transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._size + self.transport.get_write_buffer_size()

    # -- the rest, as the transport has it --

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def is_reading(self) -> bool:
        return self.transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.transport.get_protocol()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.transport.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self.transport.get_write_buffer_limits()

    # No `__getattr__` forwarding the rest: a class with one pays a slower lookup on every
    # attribute it does have (uvicorn reads this transport's dozens of times a request).
