"""The per-address connection count behind `server.max_connections_per_client` (server/connections.py)."""

from __future__ import annotations

import functools
import logging
import select
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from llmmux.router import Router
from llmmux.server.app import App
from llmmux.server.connections import REFUSAL_LOG_INTERVAL_S, ClientCounts, GuardedHttpToolsProtocol
from llmmux.server.workers import LISTEN_BACKLOG, _uvicorn_config, bind, raise_open_file_limit


def test_an_address_is_admitted_up_to_the_cap_and_again_after_a_release() -> None:
    counts = ClientCounts(2)
    assert counts.admit("10.0.0.1") and counts.admit("10.0.0.1")
    assert not counts.admit("10.0.0.1")
    assert counts.admit("10.0.0.2")  # another address has its own share
    counts.release("10.0.0.1")
    assert counts.admit("10.0.0.1")
    assert not counts.admit("10.0.0.1")


def test_released_addresses_are_forgotten() -> None:
    counts = ClientCounts(3)
    for n in range(1000):  # many clients passing through leave nothing behind
        counts.admit(f"10.0.{n // 256}.{n % 256}")
        counts.release(f"10.0.{n // 256}.{n % 256}")
    assert len(counts) == 0


def test_zero_is_no_cap() -> None:
    counts = ClientCounts(0)
    assert all(counts.admit("10.0.0.1") for _ in range(10_000))


def test_refusals_are_logged_once_an_interval_with_their_count(caplog: pytest.LogCaptureFixture) -> None:
    counts = ClientCounts(1)
    with caplog.at_level(logging.WARNING, logger="llmmux.server"):
        for i in range(500):  # a flood: one line, not 500
            counts.refused("10.0.0.9", now=100.0 + i / 1000)
        counts.refused("10.0.0.9", now=100.0 + REFUSAL_LOG_INTERVAL_S)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("refused 1 connection(s)") and "10.0.0.9" in lines[0]
    assert lines[1].startswith("refused 500 connection(s)")


def test_serve_runs_the_guarded_protocol_with_the_configured_keep_alive() -> None:
    router = Router.from_config(
        {
            "server": {"keep_alive_timeout": "20s", "max_connections_per_client": 7},
            "providers": {"up": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}},
        }
    )
    config = _uvicorn_config(App(router))
    assert config.timeout_keep_alive == 20
    protocol = config.http
    assert isinstance(protocol, functools.partial) and protocol.func is GuardedHttpToolsProtocol
    assert protocol.keywords["counts"].limit == 7


class _StallingProtocol(GuardedHttpToolsProtocol):
    """A connection whose bytes hold the loop for a while: the work of thousands of other streams."""

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"STALL"):
            time.sleep(_STALL_S)
            return
        super().data_received(data)


_HEAD_TIMEOUT_S = 0.3
_STALL_S = 1.5


def test_a_head_that_waited_on_a_busy_loop_is_answered_not_reset() -> None:
    """The head deadline is the client's, not the loop's: a request that arrived whole while
    the loop was busy past the deadline is answered. uvloop runs due timers before it polls
    for reads, so the deadline fired first, and closing over the unread request reset the
    connection (round 2 of bench/many_streams.py: hundreds of resets)."""
    router = Router.from_config(
        {
            "server": {"header_timeout": f"{_HEAD_TIMEOUT_S}s"},
            "providers": {"up": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}},
        }
    )
    config = _uvicorn_config(App(router))
    config.lifespan = "off"
    assert isinstance(config.http, functools.partial)
    config.http = functools.partial(_StallingProtocol, **config.http.keywords)
    server = uvicorn.Server(config)
    sock = bind("127.0.0.1", 0, reuse_port=False)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as client,
            socket.create_connection(("127.0.0.1", port), timeout=10) as busy,
        ):
            time.sleep(0.1)  # both accepted: the client's head deadline runs
            busy.sendall(b"STALL")
            time.sleep(_STALL_S / 3)  # the loop is held: the request waits in the kernel past its deadline
            client.sendall(b"GET /health HTTP/1.1\r\nHost: llmmux\r\n\r\n")
            reply = client.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_a_worker_busy_past_uvicorns_backlog_still_queues_new_connections() -> None:
    """Past the listen backlog a handshake's last ACK is dropped, and the client, which thinks it
    is connected, is reset a minute later. The workers ask for as much as the kernel allows:
    uvicorn listens again with its own `backlog` (2,048 by default), so both must say so."""
    router = Router.from_config(
        {"providers": {"up": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}}}
    )
    assert _uvicorn_config(App(router)).backlog == LISTEN_BACKLOG
    raise_open_file_limit()  # the clients below hold 2,100 sockets
    allowed = min(LISTEN_BACKLOG, int(Path("/proc/sys/net/core/somaxconn").read_text()))
    count = min(allowed, 2100)  # one past uvicorn's default (and the kernel's +1) where the system allows it
    listener = bind("127.0.0.1", 0, reuse_port=False)  # listening; nobody accepts: a busy worker
    clients: list[socket.socket] = []
    try:
        for _ in range(count):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(listener.getsockname())
            clients.append(client)
        poller = select.poll()  # select() stops at descriptor 1,024
        by_fd = {c.fileno(): c for c in clients}
        for fd in by_fd:
            poller.register(fd, select.POLLOUT)
        deadline = time.monotonic() + 5
        while by_fd and time.monotonic() < deadline:
            for fd, _ in poller.poll(100):
                if by_fd[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    poller.unregister(fd)
                    del by_fd[fd]
        assert len(by_fd) == 0  # every handshake completed into the queue
    finally:
        for client in clients:
            client.close()
        listener.close()
