"""A client that leaves: a request sent on a raw socket and hung up once the server is working on it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any


def until(condition: Callable[[], Any], timeout: float) -> float:
    """Seconds until `condition()` holds; fails past `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic() - started


def leave(
    port: int,
    path: str,
    body: dict[str, Any],
    working: Callable[[], Any],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10,
) -> None:
    """POST `body` to `path` on a raw socket, wait until `working()` holds (the upstream or the
    model has the request), and hang up without reading the reply."""
    data = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: llmmux", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(data)}")
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
        until(working, timeout=timeout)
