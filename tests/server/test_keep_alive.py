"""Keep-alive under the server's own protocol (server/connections.py): one timer a connection,
an idle connection closed once the timeout has passed since its last response, a busy one never."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from .test_coalesce import Socket, _protocol

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _answered(socket: Socket, count: int) -> None:
    async with asyncio.timeout(5):
        while len(socket.writes) < count:
            await asyncio.sleep(0.001)


async def test_requests_on_one_connection_arm_one_keep_alive_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn arms a timer after each response and cancels it on the next request: at c=1
    both are on every request's path."""
    protocol, socket = _protocol(_app, access_log=False, timeout_keep_alive=5)
    loop = asyncio.get_running_loop()
    armed: list[Callable[..., object]] = []
    call_later = loop.call_later

    def counted(delay: float, callback: Callable[..., object], *args: object, **kwargs: object) -> asyncio.TimerHandle:
        if getattr(callback, "__self__", None) is protocol:
            armed.append(callback)
        return call_later(delay, callback, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_later", counted)
    for n in range(1, 21):
        protocol.data_received(REQUEST)
        await _answered(socket, n)
    assert len(armed) == 1 and socket.ended == ""
    protocol.connection_lost(None)
    assert protocol.timeout_keep_alive_task is None  # cancelled with the connection


async def test_an_idle_connection_closes_once_the_timeout_passed_since_its_last_response() -> None:
    """Margins of half a second either way: a loaded machine delays the loop, not the outcome."""
    protocol, socket = _protocol(_app, access_log=False, timeout_keep_alive=1.0)
    protocol.data_received(REQUEST)
    await _answered(socket, 1)
    await asyncio.sleep(0.5)
    protocol.data_received(REQUEST)  # the first response's timer fires about 0.5 s after this one's end
    await _answered(socket, 2)
    last = asyncio.get_running_loop().time()
    async with asyncio.timeout(5):
        while not socket.ended:
            await asyncio.sleep(0.01)
    assert socket.ended == "closed"
    assert asyncio.get_running_loop().time() - last >= 0.9  # from the last response (the first: 0.5 s)


async def test_a_request_in_flight_when_the_timer_fires_is_not_cut_off() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await release.wait()
        await _app(scope, receive, send)

    protocol, socket = _protocol(slow, access_log=False, timeout_keep_alive=0.1)
    protocol.data_received(REQUEST)
    await started.wait()
    await asyncio.sleep(0.3)  # longer than the timeout, but a request is in flight
    release.set()
    await _answered(socket, 1)
    assert socket.ended == ""
    async with asyncio.timeout(5):  # and once idle, the timeout counts from the response
        while not socket.ended:
            await asyncio.sleep(0.01)
