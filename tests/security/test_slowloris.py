"""Slowloris against `llmmux serve` as a real process, with real sockets.

Slow head senders, a half-sent head, a silent connection and a stalled body are closed
within their deadline, one address cannot hold more than its share of connections, and a
normal client is answered while all that goes on. Deadlines are small here (1.5 s) so the
module runs in seconds; the defaults are in docs/security.md.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from llmmux.config import ConfigError, load_config_or_raise
from llmmux.config.model import ServerConfig
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

HEAD_DEADLINE = 1.5
BODY_DEADLINE = 1.5
SEND_DEADLINE = 1.5
CAP = 20
SLACK = 2.5  # a loaded CI machine; without the guard these sockets stay open for ever
CONFIG = """
server:
  master_key: sk-master-slowloris
  header_timeout: {head}
  body_timeout: {body}
  send_timeout: {send}
  keep_alive_timeout: 30s
  max_connections_per_client: {cap}
providers:
  up:
    type: openai_compatible
    base_url: {url}
    models: [gpt-fake]
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with FakeOpenAI() as upstream:
        folder = tmp_path_factory.mktemp("slowloris")
        config = folder / "llmmux.yaml"
        config.write_text(
            CONFIG.format(head=HEAD_DEADLINE, body=BODY_DEADLINE, send=SEND_DEADLINE, cap=CAP, url=upstream.url)
        )
        port = free_port()
        process = start_serve(config, port)
        try:
            wait_healthy(port, process)
            yield port
        finally:
            stop_serve(process)


_OPEN: list[socket.socket] = []


@pytest.fixture(autouse=True)
def close_sockets() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def connect(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.setblocking(False)
    _OPEN.append(sock)
    return sock


def closed_after(sock: socket.socket, limit: float) -> tuple[bytes, float]:
    """What the server sent and the seconds until it closed; inf when still open at `limit`."""
    started, received = time.monotonic(), b""
    while (left := limit - (time.monotonic() - started)) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received, time.monotonic() - started
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, float("inf")


def is_closed(sock: socket.socket) -> bool:
    return closed_after(sock, 0.01)[1] != float("inf")


def chat(port: int) -> str:
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-master-slowloris", max_retries=0)
    reply = client.chat.completions.create(model="gpt-fake", messages=[{"role": "user", "content": "hi"}], timeout=5)
    return reply.choices[0].message.content or ""


def test_slow_header_senders_are_closed_within_the_deadline(gateway: int) -> None:
    socks = [connect(gateway, "127.0.0.2") for _ in range(10)]
    for sock in socks:
        sock.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmmux\r\n")
    started = time.monotonic()
    open_socks = list(socks)
    # One header line every 0.3 s, as slowloris does: each keeps the old server reading.
    while open_socks and time.monotonic() - started < HEAD_DEADLINE + SLACK:
        time.sleep(0.3)
        for sock in list(open_socks):
            try:
                sock.send(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                open_socks.remove(sock)
                continue
            if is_closed(sock):
                open_socks.remove(sock)
    elapsed = time.monotonic() - started
    assert not open_socks, f"{len(open_socks)} slow senders still open after {elapsed:.1f}s"
    assert elapsed >= HEAD_DEADLINE - 0.2  # closed by the deadline, not by something else at once


def test_a_half_sent_head_gets_a_408_and_is_closed(gateway: int) -> None:
    sock = connect(gateway, "127.0.0.3")
    sock.send(b"GET /v1/models HTTP/1.1\r\nHost: llmmux\r\nAuthorization: Bea")
    received, elapsed = closed_after(sock, HEAD_DEADLINE + SLACK)
    assert elapsed < HEAD_DEADLINE + SLACK
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in received.lower()


def test_a_connection_that_sends_nothing_is_closed(gateway: int) -> None:
    sock = connect(gateway, "127.0.0.3")
    received, elapsed = closed_after(sock, HEAD_DEADLINE + SLACK)
    assert HEAD_DEADLINE - 0.2 <= elapsed < HEAD_DEADLINE + SLACK
    assert received == b""  # nothing was asked, so nothing is answered


def test_a_body_that_goes_silent_is_closed(gateway: int) -> None:
    sock = connect(gateway, "127.0.0.4")
    sock.send(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmmux\r\nAuthorization: Bearer sk-master-slowloris\r\n"
        b'Content-Type: application/json\r\nContent-Length: 400\r\n\r\n{"model": "gpt-'
    )
    time.sleep(0.2)
    sock.send(b'fake", ')  # a second read: the body spans reads, then stops
    _, elapsed = closed_after(sock, BODY_DEADLINE + SLACK)
    assert elapsed < BODY_DEADLINE + SLACK


def test_a_client_that_stops_reading_the_response_is_cut_off(gateway: int) -> None:
    text = "x" * (24 * 1024 * 1024)  # echoed back: far more than the socket buffers hold
    body = json.dumps({"model": "gpt-fake", "messages": [{"role": "user", "content": text}]}).encode()
    sock = connect(gateway, "127.0.0.7")
    sock.setblocking(True)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmmux\r\nAuthorization: Bearer sk-master-slowloris\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    time.sleep(SEND_DEADLINE + SLACK)  # not reading: the gateway's writes stall
    sock.setblocking(False)
    received, elapsed = closed_after(sock, 10)
    assert elapsed < 10
    assert len(received) < len(text)  # cut off, not delivered whole to a reader that came back


def test_one_address_is_capped_and_released(gateway: int) -> None:
    held = [connect(gateway, "127.0.0.5") for _ in range(CAP)]
    for sock in held:  # a request each, so every one is surely accepted and counted
        sock.send(b"GET /health HTTP/1.1\r\nHost: llmmux\r\n\r\n")
    for sock in held:
        select.select([sock], [], [], 5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    refused = connect(gateway, "127.0.0.5")
    refused.send(b"GET /health HTTP/1.1\r\nHost: llmmux\r\n\r\n")
    received, elapsed = closed_after(refused, 5)
    assert received.startswith(b"HTTP/1.1 503 "), received
    assert elapsed < 5
    other = connect(gateway, "127.0.0.6")  # the cap is per address, not global
    other.send(b"GET /health HTTP/1.1\r\nHost: llmmux\r\n\r\n")
    select.select([other], [], [], 5)
    assert other.recv(65536).startswith(b"HTTP/1.1 200 ")
    held.pop().close()
    deadline = time.monotonic() + 5
    while True:  # the server notices the close on its next loop turn
        again = connect(gateway, "127.0.0.5")
        again.send(b"GET /health HTTP/1.1\r\nHost: llmmux\r\n\r\n")
        select.select([again], [], [], 5)
        answer = again.recv(65536)
        if answer.startswith(b"HTTP/1.1 200 ") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.startswith(b"HTTP/1.1 200 ")


def test_a_normal_client_is_answered_during_an_attack(gateway: int) -> None:
    attackers = [connect(gateway, f"127.0.1.{n}") for n in range(1, 11) for _ in range(CAP + 5)]
    for sock in attackers:
        try:
            sock.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: llmmux\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused over the cap
    started = time.monotonic()
    assert chat(gateway).startswith("echo: ")
    assert time.monotonic() - started < 3
    deadline = time.monotonic() + HEAD_DEADLINE + SLACK
    while time.monotonic() < deadline and not all(is_closed(s) for s in attackers):
        time.sleep(0.2)
    assert all(is_closed(s) for s in attackers)
    assert chat(gateway).startswith("echo: ")


def test_the_limits_are_read_from_the_server_section(tmp_path: Path) -> None:
    config = tmp_path / "llmmux.yaml"
    config.write_text(
        "server: {header_timeout: 5s, body_timeout: 2m, send_timeout: 45, keep_alive_timeout: 20s,"
        " max_connections_per_client: 64}\nproviders: {}\n"
    )
    server = load_config_or_raise(config)[0].server
    assert (server.header_timeout_s, server.body_timeout_s, server.send_timeout_s) == (5.0, 120.0, 45.0)
    assert (server.keep_alive_timeout_s, server.max_connections_per_client) == (20.0, 64)
    defaults = ServerConfig()
    assert defaults.header_timeout_s == 10.0 and defaults.max_connections_per_client == 256


def test_a_bad_limit_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "llmmux.yaml"
    config.write_text("server: {header_timeout: soon}\nproviders: {}\n")
    with pytest.raises(ConfigError, match="server.header_timeout"):
        load_config_or_raise(config)
