"""The gateway's HTTP/1.1 client: an asyncio Protocol per connection, httptools' response parser, a keep-alive pool.

Why its own client: on the gateway's hot path aiohttp was the largest part of a worker's
CPU (34-46% in py-spy), most of it request objects, header multidicts, URL objects and
timers built per call. This client keeps only what an upstream call needs: one prebuilt
head written with the body in one write, the reply parsed in C, one timer per exchange,
connections kept alive and reused per origin. `bench/http_clients.py` measures it against
aiohttp and the Rust-backed clients in one run.

`Http1Pool.exchange` sends a request and returns its `Connection` once the reply's head has
arrived; the body is then read with `read()` (chunk by chunk, reading pauses while more than
HIGH_WATER bytes wait unread: backpressure) and the connection goes back with `finish()`.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
import zlib
from collections import deque
from typing import Any

import httptools

KEEPALIVE_S = 30.0
"""An idle connection older than this is closed instead of reused (as aiohttp's keepalive_timeout)."""
SWEEP_S = 5.0
"""While connections sit idle, the pool looks at them this often and closes the ones it does not need."""
KEEP_IDLE = 32
"""Idle connections per origin kept until KEEPALIVE_S; past it, those unused for a whole sweep are closed.
A burst of 5,000 streams would otherwise leave 5,000 sockets and their buffers for 30 s."""
HIGH_WATER = 256 * 1024
"""Unread body bytes at which a connection stops reading from the socket until the reader catches up."""
LOW_WATER = 64 * 1024
SEPARATE_BODY = 64 * 1024
"""A body up to this size leaves in one write with its head (one system call); a larger one is not copied."""
MAX_HEAD = 64 * 1024
"""The most bytes of reply headers accepted: enough for any API, bounded against a hostile upstream."""
_COMPRESSED = frozenset({"gzip", "deflate", "x-gzip"})

Origin = tuple[str, str, int]
"""(scheme, host, port): what a kept-alive connection can be reused for."""


class ServerDisconnected(ConnectionError):
    """The upstream closed the connection before the reply's head arrived."""


class ReplyBrokenOff(Exception):
    """The connection ended, or the upstream stopped, in the middle of a reply's body."""


class InvalidReply(Exception):
    """The upstream's bytes are not a valid HTTP/1.1 reply."""


_tls: ssl.SSLContext | None = None


def _tls_context() -> ssl.SSLContext:
    global _tls  # loading the CA store takes milliseconds: once per process, on the first TLS connection
    if _tls is None:
        _tls = ssl.create_default_context()
    return _tls


class Connection(asyncio.Protocol):
    """One keep-alive connection and the exchange it carries (one at a time)."""

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop) -> None:
        self.origin = origin
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None  # outlives an exchange: see _arm
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._head_size = 0
        self._head: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self.complete = False
        self._reusable = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._decoder: Any = None
        self._deadline: float | None = None
        self._idle: float | None = None
        self._last_read = 0.0

    # -- the exchange, as its reader sees it --

    def start(self, head: bytes, body: bytes | None, deadline: float | None, idle: float | None) -> None:
        """Send one request; `deadline` (loop time) bounds the whole exchange, `idle` each silence of the upstream."""
        self._reset()
        self._head = self._loop.create_future()
        if self._transport is None:
            raise ServerDisconnected("the server closed the connection")
        if body and len(body) > SEPARATE_BODY:
            self._transport.write(head)
            self._transport.write(body)
        else:
            self._transport.write(head + body if body else head)
        self._deadline, self._idle = deadline, idle
        if deadline is not None or idle is not None:
            self._last_read = self._loop.time()
            self._arm()

    async def response_head(self) -> None:
        assert self._head is not None
        await self._head

    @property
    def buffered(self) -> int:
        """Body bytes received and not yet read."""
        return self._buffered

    async def read(self) -> bytes:
        """The body received since the last read (every chunk of a chunked reply that arrived
        together, so a stream's reader sees the events of one network read at once); b"" at its end."""
        while True:
            if chunks := self._chunks:
                chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= LOW_WATER and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self.complete:
                return b""
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def read_all(self, limit: int | None = None) -> bytes:
        parts: list[bytes] = []
        size = 0
        while chunk := await self.read():
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                return b"".join(parts)[:limit]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def abort(self, error: BaseException) -> None:
        """End the exchange with `error` and the connection with it."""
        if self._error is None and not self.complete:
            self._error = error
            if self._head is not None and not self._head.done():
                self._head.set_exception(error)
                self._head.exception()  # retrieved: a reader that never awaits it is no "never retrieved" warning
            self._wake()
        self.close()

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self._transport is not None:
            self._transport.close()

    # -- timers: one handle per connection, re-armed lazily instead of on every read --
    #
    # An exchange's limits are checked when the handle fires, so a handle due no later than
    # the new exchange's limit is kept: a kept-alive connection whose every request has the
    # same timeout arms one timer in a whole deadline's worth of requests, not one a request
    # (a `call_at` and a `cancel` cost some 4k instructions; at c=1 they are on the path).

    def _arm(self) -> None:
        due = self._deadline
        if self._idle:
            silence = self._last_read + self._idle
            due = silence if due is None or silence < due else due
        assert due is not None  # armed only with a deadline or an idle limit
        timer = self._timer
        if timer is not None:
            if timer.when() <= due:
                return  # it fires first, and re-arms for what is due then
            timer.cancel()
        # In a context of its own: a handle keeps the context it was made in, and this one may
        # outlive the request that armed it (see Http1Pool._connect).
        self._timer = self._loop.call_at(due, self._on_timer, context=contextvars.Context())

    def _on_timer(self) -> None:
        self._timer = None
        if self._head is None or self.complete or self._error is not None:
            return  # idle in the pool, or a finished exchange: the next one arms its own
        now = self._loop.time()
        if self._deadline is not None and now >= self._deadline:
            return self.abort(TimeoutError("the upstream did not finish its reply in time"))
        if self._paused:  # the reader is behind, not the upstream: a silence only counts while we wait
            self._last_read = now
        elif self._idle is not None and now - self._last_read >= self._idle:
            return self.abort(TimeoutError(f"the upstream sent nothing for {self._idle:g} s"))
        self._arm()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport is no asyncio.Transport subclass

    def data_received(self, data: bytes) -> None:
        if self._head is None or self.complete:  # bytes on an idle connection: it cannot be trusted again
            self.close()
            return
        if self._idle is not None:
            self._last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.abort(self._error or InvalidReply(f"invalid HTTP reply: {exc}"))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        if self._head is None or self.complete:
            self._stop_timer()
            return
        if not self._head.done():
            self.abort(ServerDisconnected("the server closed the connection"))
        elif self._delimited_by_close():
            self._finish_message()
        else:
            self.abort(ReplyBrokenOff("the connection closed in the middle of the reply"))

    # -- httptools callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value)
        if self._head_size > MAX_HEAD:
            self._error = InvalidReply(f"the reply's headers are over {MAX_HEAD} bytes")
            raise self._error
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:  # 1xx: a preliminary head, the real one follows
            self.headers = {}
            return
        if self.headers.get("content-encoding", "").lower() in _COMPRESSED:
            self._decoder = zlib.decompressobj(wbits=47)  # gzip or zlib, told apart by the header
        assert self._head is not None
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._error = InvalidReply(f"the reply's compressed body is corrupt: {exc}")
                raise self._error from None
            if not body:
                return
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status >= 200:
            self._reusable = self._parser.should_keep_alive()  # read now: the parser forgets it once reset
            self._finish_message()

    def _finish_message(self) -> None:
        if self._decoder is not None:
            rest = self._decoder.flush()
            if rest:
                self._chunks.append(rest)
        self.complete = True  # the timer stays armed: it finds the exchange over, or the next one's limits
        self._wake()

    def _delimited_by_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get("transfer-encoding", "")

    def park(self, now: float) -> None:
        """The exchange is over and the connection waits in the pool: bytes arriving now close it."""
        self.idle_since = now
        self._head = None

    def keep_alive(self) -> bool:
        return self.complete and self._reusable and not self.closed


class Http1Pool:
    """Kept-alive connections per origin, at most `max_connections` in use at once (0: no limit)."""

    def __init__(self, max_connections: int, connect_timeout: float) -> None:
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._idle: dict[Origin, list[Connection]] = {}
        self._in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._sweep: asyncio.TimerHandle | None = None

    async def exchange(
        self, origin: Origin, head: bytes, body: bytes | None, deadline: float | None, idle: float | None
    ) -> Connection:
        """Send a request over a pooled connection; returns it once the reply's head is in. Pair with `finish`."""
        conn = await self._acquire(origin, deadline)
        try:
            conn.start(head, body, deadline, idle)
            await conn.response_head()
        except BaseException:
            self.finish(conn)
            raise
        return conn

    def finish(self, conn: Connection) -> None:
        """Give `conn` back: kept for reuse when its reply was read to the end, closed otherwise."""
        self._in_use -= 1
        if conn.keep_alive() and not self._closed:
            conn.park(asyncio.get_running_loop().time())
            idle = self._idle.setdefault(conn.origin, [])
            idle.append(conn)
            if idle[0].idle_since < conn.idle_since - KEEPALIVE_S:  # the oldest idle one has gone stale
                idle.pop(0).close()
            if self._sweep is None:
                self._schedule_sweep()
        else:
            conn.close()
        self._wake_one()

    def _schedule_sweep(self) -> None:
        # In a context of its own: a handle keeps the context it was made in, here a request's.
        loop = asyncio.get_running_loop()
        self._sweep = loop.call_later(SWEEP_S, self._sweep_idle, context=contextvars.Context())

    def _sweep_idle(self) -> None:
        """Close what has gone stale, and the surplus past KEEP_IDLE that no request took since the last sweep.

        A list is oldest first (reuse takes the newest), so its head is what the load of the
        last SWEEP_S did not need.
        """
        self._sweep = None
        now = asyncio.get_running_loop().time()
        for origin, idle in list(self._idle.items()):
            kept: list[Connection] = []
            for conn in idle:
                if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                    kept.append(conn)
                else:
                    conn.close()
            cut = 0
            while cut < len(kept) - KEEP_IDLE and now - kept[cut].idle_since >= SWEEP_S:
                kept[cut].close()
                cut += 1
            if cut < len(kept):
                idle[:] = kept[cut:]
            else:
                del self._idle[origin]
        if self._idle and not self._closed:
            self._schedule_sweep()

    async def _acquire(self, origin: Origin, deadline: float | None) -> Connection:
        loop = asyncio.get_running_loop()
        if self._max and self._in_use >= self._max:
            await self._wait_for_slot(loop, deadline)
        self._in_use += 1
        idle = self._idle.get(origin)
        now = loop.time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            conn.close()
        try:
            return await self._connect(loop, origin, deadline)
        except BaseException:
            self._in_use -= 1
            self._wake_one()
            raise

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        limit = self._limit(loop, deadline)
        while self._in_use >= self._max:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(limit):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():  # woken, then gone: pass the wake on
                    self._wake_one()
                raise

    def _wake_one(self) -> None:
        """Wake one live waiter for a slot (one that timed out or was cancelled is skipped)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, loop: asyncio.AbstractEventLoop, origin: Origin, deadline: float | None) -> Connection:
        scheme, host, port = origin
        tls = _tls_context() if scheme == "https" else None
        # Connected in a context of its own: a transport keeps a copy of the context it was made
        # in for its whole life, and the request's (its first-token watcher, and through it the
        # request's task and everything that task held) would stay alive with every idle connection.
        connecting = asyncio.create_task(
            loop.create_connection(
                lambda: Connection(origin, loop), host, port, ssl=tls, server_hostname=host if tls else None
            ),
            context=contextvars.Context(),
        )
        try:
            async with asyncio.timeout_at(self._limit(loop, deadline)):
                transport, conn = await connecting
        except BaseException:
            if connecting.done() and not connecting.cancelled() and connecting.exception() is None:
                connecting.result()[0].close()  # connected just as the wait ended: not to be left open
            raise
        conn.connection_made(transport)  # uvloop returns before it calls connection_made itself
        return conn

    def _limit(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> float:
        """Waiting for a slot and connecting share `connect_timeout` (as aiohttp's), within the total deadline."""
        limit = loop.time() + self._connect_timeout
        return limit if deadline is None else min(limit, deadline)

    def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
