"""A fake OpenAI streaming upstream that holds thousands of streams open at once.

Every POST gets a chat-completion stream of `events` chunks, one every `pace_s` seconds,
then `[DONE]`. One timer serves every open stream (a timer per stream would cost the
fake more than the gateway it tests), so ten thousand streams cost it one pass over a
list per tick. Raw asyncio.Protocol: keep-alive, Content-Length request bodies.

    python tests/upstreams/paced_sse.py --port 9000 --events 20 --pace-ms 500   # as a process
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def chunk_event(i: int, last: bool) -> bytes:
    delta = {} if last else {"content": f"t{i} "}
    body = {
        "id": "chatcmpl-paced",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}],
    }
    data = b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


_MODELS = b'{"object":"list","data":[{"id":"paced-model","object":"model","owned_by":"paced"}]}'
MODELS = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(_MODELS), _MODELS)
"""A GET (the gateway's health probe of /models) is answered at once, not with a stream."""


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class _Stream(asyncio.Protocol):
    def __init__(self, server: PacedSSE) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.sent = -1  # -1: no stream open on this connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        total = end + 4 + _content_length(self.buffer[:end])
        if len(self.buffer) >= total and self.sent < 0:
            get = self.buffer.startswith(b"GET ")
            self.buffer = self.buffer[total:]
            assert self.transport is not None
            if get:
                self.transport.write(MODELS)
                return
            self.transport.write(HEAD)
            self.sent = 0
            self.server.open.add(self)
            self.server.served += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.open.discard(self)


class PacedSSE:
    """The server: `start()` on a running loop, `close()` when done; `served` counts streams begun."""

    def __init__(self, events: int = 20, pace_s: float = 0.1) -> None:
        self.events = [chunk_event(i, i == events - 1) for i in range(events)]
        done = b"data: [DONE]\n\n"
        self.done = b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done)
        self.pace_s = pace_s
        self.open: set[_Stream] = set()
        self.served = 0
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task[None] | None = None

    async def start(self, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self._server = await loop.create_server(lambda: _Stream(self), sock=sock, backlog=16384)
        self._ticker = asyncio.ensure_future(self._tick())
        return int(sock.getsockname()[1])

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.pace_s)
            for stream in list(self.open):
                transport = stream.transport
                if transport is None or transport.is_closing():
                    self.open.discard(stream)
                    continue
                transport.write(self.events[stream.sent])
                stream.sent += 1
                if stream.sent == len(self.events):
                    transport.write(self.done)
                    stream.sent = -1
                    self.open.discard(stream)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
            for stream in list(self.open):
                if stream.transport is not None:
                    stream.transport.abort()


async def _serve(port: int, events: int, pace_s: float) -> None:
    server = PacedSSE(events, pace_s)
    await server.start(port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--pace-ms", type=float, default=100)
    args = parser.parse_args()
    import uvloop

    uvloop.run(_serve(args.port, args.events, args.pace_ms / 1000))
