"""The gateway's HTTP/1.1 client (providers/http1.py via Http1Transport) against raw servers on 127.0.0.1.

Each server is a plain `asyncio.start_server` handler writing exact bytes, so framing
(chunked, close-delimited, gzip), broken replies, stalls and connection reuse are what
the test says they are.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import gzip
import ssl
import subprocess
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from llmmux.errors import UpstreamBadResponse, UpstreamConnectError, UpstreamTimeout
from llmmux.providers import http1
from llmmux.providers.transport import Http1Transport, UpstreamRequest, transport_error

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON = b'{"ok":true}'


class Server:
    """A raw server; counts the connections it accepted and the most open at once."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepted = 0
        self.open = 0
        self.most_open = 0
        self.heads: list[bytes] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"content-length")), 0
        )
        return await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[Server] = []

    async def start(handler: Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> Server:
        server = Server(lambda r, w: handler(server, r, w))
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        server.port = server.server.sockets[0].getsockname()[1]
        servers.append(server)
        return server

    yield start
    for server in servers:
        assert server.server is not None
        server.server.close()


_clients: list[Http1Transport] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _clients:
        await _clients.pop().aclose()


def transport(**limits: float) -> Http1Transport:
    """A client closed after the test (its kept-alive connections with it)."""
    settings = {"timeout": 10.0, "connect_timeout": 5.0, "read_timeout": None, "max_connections": 100, **limits}
    _clients.append(Http1Transport(**settings))  # type: ignore[arg-type]
    return _clients[-1]


def post(port: int, body: bytes = b'{"model":"m"}', **extra: float) -> UpstreamRequest:
    headers = {"content-type": "application/json", "authorization": "Bearer sk-test"}
    return UpstreamRequest("POST", f"http://127.0.0.1:{port}/v1/chat/completions?x=1", headers, body, **extra)  # type: ignore[arg-type]


async def answer_json(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n" + JSON)
        await writer.drain()


async def test_requests_reuse_one_kept_alive_connection_and_send_exact_heads(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    server = await serve(answer_json)
    client = transport()
    for _ in range(3):
        reply = await client.send(post(server.port))
        assert (reply.status, reply.body, reply.headers["content-type"]) == (200, JSON, "application/json")
    assert server.accepted == 1
    assert server.heads[0] == (
        b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer sk-test\r\naccept-encoding: gzip, deflate\r\ncontent-length: 13\r\n\r\n" % server.port
    )
    await client.aclose()


async def test_chunked_gzip_and_close_delimited_bodies_arrive_whole(serve: Callable[..., Awaitable[Server]]) -> None:
    packed = gzip.compress(JSON * 100)

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n")
        for i in range(0, len(packed), 7):
            piece = packed[i : i + 7]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        writer.write(b"0\r\n\r\n")
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + JSON)
        await writer.drain()

    server = await serve(handler)
    client = transport()
    assert (await client.send(post(server.port))).body == JSON * 100
    assert (await client.send(post(server.port))).body == JSON
    await client.aclose()


async def test_a_stream_pauses_reading_while_its_reader_is_behind(serve: Callable[..., Awaitable[Server]]) -> None:
    size = 16 * 1024 * 1024

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()

    server = await serve(handler)
    client = transport()
    received = 0
    most_buffered = 0
    async with client.open_stream(post(server.port)) as reply:
        await asyncio.sleep(0.5)  # the upstream writes as fast as it can; nothing is read meanwhile
        async for chunk in reply.chunks:
            received += len(chunk)
            conn = reply.chunks._conn  # type: ignore[attr-defined]
            most_buffered = max(most_buffered, conn.buffered)
    assert received == size
    # Without backpressure the whole 16 MiB would pile up unread during the pause.
    assert most_buffered < http1.HIGH_WATER + 1024 * 1024
    await client.aclose()


async def test_the_chunks_of_one_network_read_are_read_together(serve: Callable[..., Awaitable[Server]]) -> None:
    # A stream's reader splits and forwards what one read brought as one batch (one write to
    # the client), so the chunked framing of one segment must not split it up again.
    events = [b"data: %d\n\n" % i for i in range(3)]
    read = asyncio.Event()

    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events))
        await writer.drain()
        await read.wait()
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(events[0]), events[0]))

    server = await serve(handler)
    client = transport()
    async with client.open_stream(post(server.port)) as reply:
        chunks = reply.chunks.__aiter__()
        assert await asyncio.wait_for(chunks.__anext__(), 5) == b"".join(events)
        read.set()
        assert [chunk async for chunk in chunks] == [events[0]]
    await client.aclose()


async def test_silence_and_overall_time_are_bounded(serve: Callable[..., Awaitable[Server]]) -> None:
    async def stall_after_head(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(30)

    server = await serve(stall_after_head)
    client = transport(read_timeout=0.3)
    with pytest.raises(TimeoutError) as silent:
        await asyncio.wait_for(client.send(post(server.port)), 5)
    assert isinstance(transport_error(silent.value, "up"), UpstreamTimeout)
    async with client.open_stream(post(server.port, idle_timeout=0.3)) as reply:
        chunks = reply.chunks.__aiter__()
        assert await chunks.__anext__() == b"hello"
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(chunks.__anext__(), 5)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(transport().send(post(server.port, timeout=0.3)), 5)


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (b"", UpstreamConnectError, "the server closed the connection"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial", UpstreamBadResponse, "broke off its reply"),
        (b"NOT HTTP AT ALL\r\n\r\n", UpstreamBadResponse, "invalid HTTP reply"),
    ],
)
async def test_broken_replies_become_the_gateways_errors(
    serve: Callable[..., Awaitable[Server]], reply: bytes, error: type[Exception], message: str
) -> None:
    async def handler(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(reply)
        await writer.drain()

    server = await serve(handler)
    with pytest.raises(Exception) as failed:
        await asyncio.wait_for(transport().send(post(server.port)), 5)
    mapped = transport_error(failed.value, "up")
    assert isinstance(mapped, error) and message in str(mapped)


async def test_a_refused_connection_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(OSError) as refused:
        await transport().send(post(port))
    assert isinstance(transport_error(refused.value, "up"), UpstreamConnectError)


async def test_connections_in_use_never_exceed_max_connections(serve: Callable[..., Awaitable[Server]]) -> None:
    async def slow(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.05)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n" + JSON)

    server = await serve(slow)
    client = transport(max_connections=2)
    replies = await asyncio.wait_for(asyncio.gather(*(client.send(post(server.port)) for _ in range(8))), 10)
    assert [r.body for r in replies] == [JSON] * 8
    assert server.most_open == 2
    await client.aclose()


async def test_a_header_holding_a_line_break_is_refused_not_sent() -> None:
    request = UpstreamRequest("POST", "http://127.0.0.1:9/x", {"x-evil": "a\r\nx-injected: 1"}, b"{}")
    with pytest.raises(ValueError, match="line break"):
        await transport().send(request)


async def test_tls_upstreams_are_verified(tmp_path: Path, serve: Callable[..., Awaitable[Server]]) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = await asyncio.start_server(lambda r, w: answer_json(plain, r, w), "127.0.0.1", 0, ssl=tls)
    plain = Server(answer_json)
    port = server.sockets[0].getsockname()[1]
    request = UpstreamRequest("POST", f"https://localhost:{port}/v1/chat/completions", {}, b"{}")
    try:
        with pytest.raises(ssl.SSLCertVerificationError):  # not in the default trust store
            await transport().send(request)
        trusting = ssl.create_default_context(cafile=str(cert))
        original, http1._tls = http1._tls, trusting
        try:
            assert (await transport().send(request)).body == JSON
        finally:
            http1._tls = original
    finally:
        server.close()


async def test_characters_a_url_may_not_hold_are_encoded_once(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(answer_json)
    url = f"http://127.0.0.1:{server.port}/v1/models/my model%2Fv1:generate?key=a b&x=%20"
    await transport().send(UpstreamRequest("POST", url, {}, b"{}"))
    assert server.heads[0].startswith(b"POST /v1/models/my%20model%2Fv1:generate?key=a%20b&x=%20 HTTP/1.1\r\n")


async def test_a_failed_connect_hands_its_slot_to_the_next_waiter() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = transport(max_connections=1, connect_timeout=5.0)
    failures = await asyncio.wait_for(
        asyncio.gather(*(client.send(post(port)) for _ in range(3)), return_exceptions=True), 3
    )
    assert all(isinstance(f, ConnectionRefusedError) for f in failures), failures  # refused, not timed out in the queue


async def test_idle_connections_past_a_few_are_closed_once_a_burst_is_over(
    serve: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "SWEEP_S", 0.2)
    monkeypatch.setattr(http1, "KEEP_IDLE", 3)

    async def slow(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.2)  # long enough that the burst's requests are all open together
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n" + JSON)

    server = await serve(slow)
    client = transport()
    await asyncio.wait_for(asyncio.gather(*(client.send(post(server.port)) for _ in range(20))), 10)
    assert server.accepted == 20
    async with asyncio.timeout(10):
        while server.open > 3:  # two sweeps: one to see them idle, one to close the surplus
            await asyncio.sleep(0.05)
    assert server.open == 3
    await client.send(post(server.port))
    assert server.accepted == 20  # the ones kept are reused
    await asyncio.sleep(0.6)
    assert server.open == 3  # a kept connection is not closed because a sweep ran again


async def test_idle_connections_are_closed_when_stale_without_another_request(
    serve: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "SWEEP_S", 0.1)
    monkeypatch.setattr(http1, "KEEPALIVE_S", 0.3)
    server = await serve(answer_json)
    client = transport()
    await client.send(post(server.port))
    assert server.open == 1
    async with asyncio.timeout(10):
        while server.open:  # before, a stale connection was closed only when the next request came
            await asyncio.sleep(0.05)


async def test_an_idle_connection_keeps_nothing_of_the_request_that_opened_it(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    """A transport keeps the context it was made in; the request's (and what it refers to) must not live on."""

    class RequestState:
        pass

    request_scoped: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar("request_scoped")
    server = await serve(answer_json)
    client = transport()

    async def one_request() -> weakref.ref[RequestState]:
        state = RequestState()
        request_scoped.set(state)
        await client.send(post(server.port))
        return weakref.ref(state)

    state = await asyncio.create_task(one_request())
    await asyncio.sleep(0)  # the finished task is let go by the loop step that woke this one
    gc.collect()
    assert server.open == 1  # the connection waits in the pool
    assert state() is None


async def test_a_read_only_header_set_has_its_head_built_once_and_a_mutable_one_each_time(
    serve: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider hands the same read-only header set on every request: its head is kept, the length added."""
    from types import MappingProxyType

    from llmmux.providers import transport as transport_module

    built: list[object] = []
    build = transport_module.head_without_length
    monkeypatch.setattr(transport_module, "head_without_length", lambda *a: built.append(a) or build(*a))
    server = await serve(answer_json)
    client = transport()
    url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
    fixed = MappingProxyType({"authorization": "Bearer sk-a"})
    for body in (b"{}", b'{"m":1}', b"{}"):
        assert (await client.send(UpstreamRequest("POST", url, fixed, body))).status == 200
    assert len(built) == 1
    lengths = [h.rsplit(b"content-length: ", 1)[1] for h in server.heads]
    assert lengths == [b"2\r\n\r\n", b"7\r\n\r\n", b"2\r\n\r\n"]
    mutable = {"authorization": "Bearer sk-b"}
    await client.send(UpstreamRequest("POST", url, mutable, b"{}"))
    mutable["authorization"] = "Bearer sk-c"  # a dict may change between requests: never kept
    await client.send(UpstreamRequest("POST", url, mutable, b"{}"))
    assert len(built) == 3
    assert b"Bearer sk-b" in server.heads[3] and b"Bearer sk-c" in server.heads[4]
    other = MappingProxyType({"authorization": "Bearer sk-d"})  # another set for the same URL replaces the kept head
    await client.send(UpstreamRequest("POST", url, other, b"{}"))
    assert b"Bearer sk-d" in server.heads[5] and len(built) == 4


async def test_a_kept_alive_connection_arms_one_timer_for_many_requests(
    serve: Callable[..., Awaitable[Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At c=1 a timer armed and cancelled per request is on the request's path: the handle
    is kept while it is due no later than the next exchange's limit."""
    server = await serve(answer_json)
    client = transport()
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    call_at = loop.call_at

    def counted(when: float, callback: Callable[..., object], *args: object, **kwargs: object) -> asyncio.TimerHandle:
        if getattr(callback, "__self__", None).__class__ is http1.Connection:
            armed.append(when)
        return call_at(when, callback, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_at", counted)
    for _ in range(20):
        assert (await client.send(post(server.port))).status == 200
    assert server.accepted == 1 and len(armed) == 1


def answering_after(*delays: float) -> Callable[[Server, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A handler that answers its n-th request on a connection after delays[n] seconds."""

    async def answer(server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for delay in delays:
            await server.read_request(reader)
            await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n" + JSON)
            await writer.drain()

    return answer


async def test_a_shorter_limit_on_a_reused_connection_still_holds(serve: Callable[..., Awaitable[Server]]) -> None:
    """The kept timer is due at the first request's limit (10 s): a later request with a
    shorter timeout gets an earlier one."""
    server = await serve(answering_after(0.0, 30.0))
    client = transport(timeout=10.0)
    assert (await client.send(post(server.port))).status == 200
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.send(post(server.port, timeout=0.3)), 5)
    assert server.accepted == 1


async def test_an_earlier_requests_timer_does_not_end_a_later_longer_exchange(
    serve: Callable[..., Awaitable[Server]],
) -> None:
    """A 0.3 s request arms a timer that fires in the middle of the next request, whose
    limit is 10 s: the timer re-arms for that limit instead of ending the exchange."""
    server = await serve(answering_after(0.0, 0.6))
    client = transport(timeout=10.0)
    assert (await client.send(post(server.port, timeout=0.3))).status == 200
    reply = await asyncio.wait_for(client.send(post(server.port)), 5)
    assert reply.status == 200 and server.accepted == 1
