"""Deadlines and a per-address cap on client connections: slowloris ends at the socket.

uvicorn arms its keep-alive timer only after a response, so a connection that never
finishes its request head (one header line every few seconds, or half a head and then
silence) is held open for ever, and nothing limits how many one address opens. This
subclass of uvicorn's httptools protocol closes, at the socket:

- a connection whose request head has not fully arrived `header_timeout_s` after the
  connection opened (or after the first byte of a later request on a kept-alive one);
  the client gets a 408 if it sent anything,
- a request body that stays silent for `body_timeout_s` (a client that stops mid-body),
- a response the client has not read for `send_timeout_s` (a reader that never reads),
- connections from an address that already holds `max_connections_per_client`: they get
  a 503 and are closed at once.

A deadline measures the client, not the loop: a head whose bytes sit unread in the kernel
when its deadline fires (the loop was busy past it) is read and served, not reset.

The cost on a request is one `call_later` and one `cancel` (about 1 µs): the head timer.
Writes go through `coalesce.CoalescingTransport`: one socket write per loop step.
The counts are per worker process; with SO_REUSEPORT the kernel spreads one address's
connections over the workers, so the whole gateway admits up to workers x the cap.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import urllib.parse
from typing import Any

if sys.platform != "win32":
    import fcntl
    import termios

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config.model import ServerConfig
from .coalesce import CoalescingTransport
from .cycle import ResponseCycle

log = logging.getLogger("llmmux.server")

# Over the cap, wait this long for the client to finish sending before the close, so the
# 503 is read instead of being lost to the reset that closing over unread bytes causes.
LINGER_S = 1.0
# An attack refuses thousands of connections a second: one warning per interval says so.
REFUSAL_LOG_INTERVAL_S = 10.0
# Written straight to the socket: there is no ASGI request to answer.
_TIMEOUT_TEXT = b"The request head took too long.\n"
_BUSY_TEXT = b"Too many connections from this address.\n"


def _plain_response(status: bytes, text: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(text)).encode() + b"\r\nconnection: close\r\n\r\n" + text
    )


HEAD_TIMEOUT_RESPONSE = _plain_response(b"408 Request Timeout", _TIMEOUT_TEXT)
TOO_MANY_RESPONSE = _plain_response(b"503 Service Unavailable", _BUSY_TEXT)


class ClientCounts:
    """Open connections per client address, for one worker process."""

    __slots__ = ("_logged_at", "_open", "_refused", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: no cap
        self._open: dict[str, int] = {}
        self._refused = 0
        self._logged_at = -REFUSAL_LOG_INTERVAL_S

    def refused(self, address: str, now: float) -> None:
        """Count a refusal; warn about the first, then at most once an interval, with the count."""
        self._refused += 1
        if now - self._logged_at >= REFUSAL_LOG_INTERVAL_S:
            log.warning(
                "refused %d connection(s) over max_connections_per_client (%d); the latest from %s",
                self._refused,
                self.limit,
                address,
            )
            self._refused, self._logged_at = 0, now

    def admit(self, address: str) -> bool:
        """Count a new connection from `address`; False (and not counted) when it would pass the cap."""
        held = self._open.get(address, 0)
        if self.limit and held >= self.limit:
            return False
        self._open[address] = held + 1
        return True

    def __len__(self) -> int:
        """How many addresses hold a connection now."""
        return len(self._open)

    def release(self, address: str) -> None:
        held = self._open.get(address, 0) - 1
        if held > 0:
            self._open[address] = held
        else:
            self._open.pop(address, None)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines and the cap above.

    Timers are armed only when a head or a body spans more than one read, so a request
    that arrives whole costs two attribute checks; a connection costs one timer.
    """

    def __init__(self, *args: Any, settings: ServerConfig, counts: ClientCounts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._settings = settings
        self._counts = counts
        self._address: str | None = None  # set once counted, so only counted connections are released
        self._head_bytes = False  # bytes of the pending head have arrived (a 408 is owed, not a bare close)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_late = False  # the head deadline fired while its bytes waited unread (see _head_expired)
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_reads = 0
        self._send_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._idle_since: float | None = None  # when the last response ended, while no new request has begun

    # -- connection --

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # Every write of uvicorn's goes through it: a response's head and body, or a burst of
        # stream events, leave in one write (see coalesce.py).
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        address = self.client[0] if self.client else None
        if address is not None and not self._counts.admit(address):
            self._refuse(address)
            return
        self._address = address
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._address is not None:
            self._counts.release(self._address)
            self._address = None
        for timer in (self._head_timer, self._body_timer, self._send_timer, self.timeout_keep_alive_task):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = self._send_timer = self.timeout_keep_alive_task = None
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        # uvicorn's, building a ResponseCycle (cycle.py) instead of its RequestResponseCycle.
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        url = self.url
        if url[:1] == b"/" and url[:2] != b"//" and b"?" not in url and b"#" not in url:
            raw_path, query = url, b""  # a plain path: what parse_url would give, without its URL object
        else:
            parsed_url = httptools.parse_url(url)
            raw_path, query = parsed_url.path, parsed_url.query or b""
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path if self.root_path else raw_path
        scope["query_string"] = query
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        else:
            app = self.app
        existing_cycle = self.cycle
        self.cycle = ResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined requests wait their turn
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

    # -- keep-alive: one timer a connection, not one a response --
    #
    # uvicorn arms a keep-alive timer after every response and cancels it when the next
    # request's bytes arrive: at one connection, a `call_later` and a `cancel` on every
    # request's path. Here the timer is armed when none is pending and, when it fires,
    # closes the connection only if it has been idle for the whole timeout since its last
    # response; otherwise it re-arms for the rest of it (or, while a request is in flight,
    # leaves the next response to arm it).

    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None  # bytes came: not idle; the pending timer finds that when it fires

    def on_response_complete(self) -> None:
        # uvicorn's, arming the keep-alive timer as above.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self._keep_alive_check)

    def _keep_alive_check(self) -> None:
        self.timeout_keep_alive_task = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return
        left = since + self.timeout_keep_alive - self.loop.time()
        if left <= 0:
            self.timeout_keep_alive_handler()
        else:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive_check)

    def _refuse(self, address: str) -> None:
        self._counts.refused(address, self.loop.time())
        self._refused = True
        self.transport.write(TOO_MANY_RESPONSE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        # The checks run after the parser, not in its callbacks: a request that arrives whole
        # then costs two attribute reads, and no timer.
        if self._refused:
            return  # dropped until the client closes or the linger ends
        super().data_received(data)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body:
            # A body is arriving (perhaps for a request already answered, as after a 413).
            self._head_done()
            self._body_reads += 1
            if self._body_timer is None:
                self._arm_body()
        elif cycle is None or cycle.response_complete:
            # A head that has begun but not ended, or bytes that start no request (a stray
            # CRLF), after uvicorn cancelled its keep-alive timer: either would idle for ever.
            self._head_bytes = True
            if self._head_timer is None:
                self._arm_head()
        else:
            self._head_done()

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_bytes = self._head_late = False

    def _arm_head(self) -> None:
        self._head_timer = self.loop.call_later(self._settings.header_timeout_s, self._head_expired)

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if not self._head_late and unread_bytes(self.transport) > 0:
            # The loop was late, not the client: uvloop runs due timers before it polls, so
            # after a loop step longer than the deadline (thousands of streams on a loaded
            # host) a request that arrived whole is still in the kernel. Closing over it
            # would reset the connection; this poll reads it, and a head still incomplete
            # then gets one fresh deadline (data_received arms it), no more.
            self._head_late = True
            return
        log.debug("closed a connection from %s: its request head was not complete in time", self._address)
        if self._head_bytes:
            self.transport.write(HEAD_TIMEOUT_RESPONSE)
        self.transport.close()

    # -- the request body --

    def _arm_body(self) -> None:
        # Checked when it fires, not re-armed per read: a read costs one increment.
        self._body_timer = self.loop.call_later(self._settings.body_timeout_s, self._body_check, self._body_reads)

    def _body_check(self, reads: int) -> None:
        self._body_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is None or not cycle.more_body:
            return
        # Reading paused by us (the app has not asked for more body yet) is not the client's silence.
        if self._body_reads != reads or self.flow.read_paused:
            self._arm_body()
            return
        log.debug("closed a connection from %s: its request body was silent too long", self._address)
        self.transport.close()

    # -- the response --

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self._settings.send_timeout_s, self._send_expired)

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        super().resume_writing()

    def _send_expired(self) -> None:
        self._send_timer = None
        if not self.transport.is_closing():
            log.debug("closed a connection from %s: it stopped reading the response", self._address)
            self.transport.abort()  # close() would wait for the unread response to drain


def unread_bytes(transport: Any) -> int:
    """Bytes the kernel holds for this connection that the loop has not read yet (0 if unknown)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sys.platform == "win32":  # no FIONREAD: a late head deadline closes as before
        return 0
    try:
        found = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(found, sys.byteorder)


def protocol_factory(settings: ServerConfig) -> Any:
    """What `uvicorn.Config(http=...)` takes: the guarded protocol with one counter for this process."""
    counts = ClientCounts(settings.max_connections_per_client)
    return functools.partial(GuardedHttpToolsProtocol, settings=settings, counts=counts)
