"""`llmmux serve` as a subprocess: start it, wait until it answers, stop it with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


def start_serve(
    config: Path,
    port: int,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    stderr: int = subprocess.STDOUT,
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "llmmux", "serve", "--config", str(config), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=stderr,
        env={**os.environ, **(env or {})},
    )


def wait_healthy(port: int, process: subprocess.Popen[bytes], limit: float = 20) -> None:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise AssertionError(f"llmmux exited with {process.returncode}: {output}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.02)
    raise AssertionError("llmmux did not become healthy")


def stop_serve(process: subprocess.Popen[bytes]) -> str:
    """SIGTERM, wait, return everything it printed (stdout, then stderr if it was piped apart)."""
    process.send_signal(signal.SIGTERM)
    try:
        output, errors = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return output.decode() + (errors.decode() if errors else "")
