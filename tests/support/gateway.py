"""Serve the real ASGI app under uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any, Self

import httpx
import uvicorn

from llmmux.router import Router
from llmmux.server.app import App


def _auth(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """`with Gateway({"providers": {...}, "routing": {...}}) as gw:` then use `gw.url`."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        config = dict(config)
        # Background health checks would send requests (and use up scripted behaviours) at
        # times a test does not control, and a breaker opened by one test's scripted failures
        # would hold into the next test on a shared gateway. Tests of health turn them on.
        config.setdefault("health_checks", {"enabled": False, "passive": False})
        self.router = Router.from_config(config)
        self.app = App(self.router)
        self.port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host="127.0.0.1",
                port=self.port,
                lifespan="on",
                log_level="warning",
                loop="asyncio",
                access_log=False,
            )
        )
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the gateway failed to start")
            threading.Event().wait(0.01)
        return self

    def request_stop(self) -> None:
        """Begin uvicorn's graceful shutdown: stop accepting, finish requests in flight, run lifespan shutdown."""
        self._server.should_exit = True

    def wait_stopped(self, timeout: float = 10) -> None:
        self._thread.join(timeout=timeout)
        if self._thread.is_alive():
            raise RuntimeError("the gateway did not stop")

    def post_raw(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return httpx.post(self.root_url + path, content=body, headers=dict(headers or {}), timeout=10)

    def get(self, path: str, key: str | None = None) -> httpx.Response:
        return httpx.get(self.root_url + path, headers=_auth(key), timeout=10)

    def delete(self, path: str, key: str | None = None) -> httpx.Response:
        return httpx.delete(self.root_url + path, headers=_auth(key), timeout=10)

    def post_json(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        return httpx.post(self.root_url + path, json=body, headers=_auth(key), timeout=10)

    def patch_json(self, path: str, body: Any, key: str | None = None) -> httpx.Response:
        return httpx.patch(self.root_url + path, json=body, headers=_auth(key), timeout=10)

    def wait_for_ledger(self, count: int, timeout: float = 5.0) -> None:
        """Wait until the ledger writer has written `count` rows (it writes in the background)."""
        writer = self.app.accounting.writer
        assert writer is not None, "this gateway has no ledger"
        deadline = time.monotonic() + timeout
        while writer.written < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"the ledger wrote {writer.written} of {count} rows")
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self.request_stop()
        self.wait_stopped()
