"""The server's response cycle (server/cycle.py) under its own protocol: the reply leaves the
moment it is whole, and a head is checked as strictly as uvicorn checks it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmmux.server.coalesce import CoalescingTransport
from llmmux.server.cycle import ResponseCycle
from llmmux.server.http import JSON_HEADERS, send_bytes

from .test_coalesce import Socket, _protocol


async def _serve(app: Any, socket: Socket | None = None) -> Socket:
    """Serve one GET with `app`; `socket`, when given, is the one the protocol writes to."""
    protocol, made = _protocol(app)
    if socket is not None:
        protocol.transport.transport = socket  # type: ignore[attr-defined]  # the CoalescingTransport's socket
    socket = socket or made
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(5):
        while not socket.ended and not (protocol.cycle and protocol.cycle.response_complete):
            await asyncio.sleep(0.001)
    await asyncio.sleep(0)
    return socket


async def test_a_whole_reply_is_written_before_the_handler_goes_on() -> None:
    """At one connection whatever runs after the last send (the task unwinding, the next
    callbacks) would otherwise delay the client: the bytes are on the socket when send returns."""
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})
        seen.extend(socket.writes)  # no loop step has passed since the last send

    socket = Socket()
    await _serve(app, socket)
    assert len(seen) == 1 and seen[0].startswith(b"HTTP/1.1 200 OK\r\n") and seen[0].endswith(b"\r\n\r\n{}")
    assert socket.writes == seen


async def test_a_whole_reply_leaves_the_loop_no_flush_to_run() -> None:
    """A content-length reply's head waits for its body and both leave in the last send:
    nothing is held for a flush after the step, so the loop has no callback of ours to run."""
    scheduled: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        transport = protocol.transport
        assert isinstance(transport, CoalescingTransport)
        await send({"type": "http.response.body", "body": b"{}"})
        scheduled.append(transport._scheduled)

    protocol, socket = _protocol(app, access_log=False)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(5):
        while not scheduled:
            await asyncio.sleep(0.001)
    assert scheduled == [False]
    assert len(socket.writes) == 1 and socket.writes[0].endswith(b"\r\n\r\n{}")


async def test_a_head_request_gets_the_held_head_and_no_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    protocol, socket = _protocol(app, access_log=False)
    protocol.data_received(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(5):
        while not socket.writes:
            await asyncio.sleep(0.001)
    assert socket.writes == [socket.writes[0]] and socket.writes[0].endswith(b"content-length: 2\r\n\r\n")


async def test_a_stream_end_leaves_with_the_events_before_it() -> None:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0)
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"data: {}\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})
        seen.extend(socket.writes)

    socket = Socket()
    await _serve(app, socket)
    assert seen[0].endswith(b"transfer-encoding: chunked\r\n\r\n")
    assert seen[1:] == [b"a\r\ndata: {}\n\n\r\n" * 3 + b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"x-ok", b"a\r\nx-injected: 1"),
        (b"x-ok", b"a\nx-injected: 1"),
        (b"x-ok", b"a\rb"),
        (b"x-ok", b"a\x00b"),
        (b"x-ok", b"a\x7fb"),
        (b"x bad", b"v"),
        (b"x-bad:", b"v"),
    ],
)
async def test_a_head_with_a_control_byte_or_a_bad_name_is_refused_not_sent(name: bytes, value: bytes) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"0"), (name, value)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    socket = await _serve(app)
    assert socket.writes == [] and socket.ended == "closed"


async def test_a_tab_in_a_value_and_upper_case_names_pass_as_uvicorn_sends_them() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"Content-Length", b"2"), (b"X-Note", b"a\tb"), (b"Connection", b"close")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    socket = await _serve(app)
    assert socket.writes == [
        b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nx-note: a\tb\r\nconnection: close\r\n\r\nok"
    ]
    assert socket.ended == "closed"  # `connection: close` ends the connection after the reply


async def test_a_body_past_or_short_of_its_length_is_an_error_as_in_uvicorn() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]})
        await send({"type": "http.response.body", "body": b"too long"})

    socket = await _serve(app)
    assert socket.ended == "closed" and not any(b"too long" in w for w in socket.writes)


@pytest.mark.parametrize("access_log", [False, True])
async def test_send_bytes_hands_the_cycle_a_whole_reply_in_one_call(
    access_log: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ASGI messages and no awaits for a whole reply under the server's own cycle; with
    uvicorn's access log on (its send writes the log line), the ASGI path, to the same bytes."""
    messages: list[str] = []
    send_messages = ResponseCycle.send

    async def counted(self: ResponseCycle, message: Any) -> None:
        messages.append(message["type"])
        await send_messages(self, message)

    monkeypatch.setattr(ResponseCycle, "send", counted)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send_bytes(send, 201, b"{}", JSON_HEADERS)

    protocol, socket = _protocol(app, access_log=access_log)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(5):
        while not socket.writes:
            await asyncio.sleep(0.001)
    assert messages == (["http.response.start", "http.response.body"] if access_log else [])
    assert socket.writes[0].startswith(b"HTTP/1.1 201 Created\r\n")
    assert socket.writes[0].endswith(b"content-type: application/json\r\ncontent-length: 2\r\n\r\n{}")


async def test_a_whole_reply_with_a_bad_header_is_refused_not_sent() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send_bytes(send, 200, b"{}", [(b"x-ok", b"a\r\nx-injected: 1")])

    protocol, socket = _protocol(app, access_log=False)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    async with asyncio.timeout(5):
        while not socket.ended:
            await asyncio.sleep(0.001)
    assert b"x-injected" not in b"".join(socket.writes)
