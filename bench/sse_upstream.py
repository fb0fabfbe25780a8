"""Fake streaming LLM upstream: answers every request with a 20-event SSE chat stream.

Raw asyncio.Protocol on uvloop with just enough HTTP/1.1 (keep-alive, Content-Length
request bodies, pipelining) to do >20k streams/s on one core, so a proxy in front of
it is the bottleneck. Each event is sent as its own chunk (Transfer-Encoding: chunked),
like a real LLM server, by default all in one write since there is no model to wait for;
--pace-ms N sends one event every N ms instead, to measure per-event proxy cost.
"""

import argparse
import asyncio
import socket

import uvloop

from payloads import SSE_EVENTS

HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)
BODY = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in SSE_EVENTS) + b"0\r\n\r\n"
RESPONSE = HEAD + BODY


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


CHUNKS = [b"%x\r\n%s\r\n" % (len(e), e) for e in SSE_EVENTS] + [b"0\r\n\r\n"]
PACE_S = 0.0  # > 0: one event per write, this far apart, like tokens from a real model


class SSEProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buf = bytearray()
        self.pending = 0  # requests read but not answered yet (responses go in order)
        self.busy = False

    def data_received(self, data):
        self.buf += data
        while (end := self.buf.find(b"\r\n\r\n")) >= 0:
            total = end + 4 + content_length(bytes(self.buf[:end]))
            if len(self.buf) < total:
                break
            del self.buf[:total]
            self.pending += 1
        if not PACE_S and self.pending:
            self.transport.write(RESPONSE * self.pending)
            self.pending = 0
        elif not self.busy:
            self._next()

    def _next(self):
        self.busy = self.pending > 0
        if self.busy:
            self.pending -= 1
            self.transport.write(HEAD)
            self._event(0)

    def _event(self, i):
        if self.transport.is_closing():
            return
        self.transport.write(CHUNKS[i])
        if i + 1 < len(CHUNKS):
            asyncio.get_running_loop().call_later(PACE_S, self._event, i + 1)
        else:
            self._next()


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = await loop.create_server(SSEProtocol, sock=sock, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pace-ms", type=float, default=0, help="gap between events (default: none)")
    args = parser.parse_args()
    PACE_S = args.pace_ms / 1000
    uvloop.run(serve(args.port))
