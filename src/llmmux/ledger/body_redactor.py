"""Redacting request bodies in a child process, so the gateway's GIL is never held for it.

Masking a prompt and its reply costs far more Python than the rest of a request's
bookkeeping; run on any thread of the gateway, it holds the GIL that the event loop needs.
The body log hands each batch to one long-lived child (`python -m llmmux.ledger.body_redactor`)
over a pipe, as msgpack frames (a 4-byte length, then the payload), and gets the rows back:

    request   [secrets, patterns, limit, items]      (items: body_rows.Item)
    reply     [rows]                                  (rows: the request_bodies columns)

The masker's secrets travel with every batch, so a reload that changes them holds at once.
The child ignores SIGINT and SIGTERM and exits when its input closes: the gateway ends it.

    redactor = RedactorProcess()
    rows = await redactor.rows(masker.secrets, config.redact, config.max_bytes, items)
    await redactor.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec

from ..config.env import environment, lookup
from ..logs import Redactor
from ..masking import Masker
from .body_rows import Item, Redact, item_rows
from .store import Row

# This llmmux, however the gateway found it (an install, a checkout on PYTHONPATH): the child imports the same.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
REPLY_TIMEOUT_S = 30.0  # a batch of 10,000 bodies takes well under a second
MAX_REDACTORS = 4  # (secrets, patterns) pairs the child keeps compiled: a reload brings a new one
_HEAD = 4


class RedactorFailed(Exception):
    """The child did not start, died, or did not answer in time."""


class RedactorProcess:
    """The gateway's side: starts the child on first use, and again if it dies."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    async def rows(self, secrets: Sequence[str], patterns: Sequence[str], limit: int, items: list[Item]) -> list[Row]:
        payload = msgspec.msgpack.encode((secrets, patterns, limit, items))
        async with self._lock:
            try:
                process = await self._running()
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(len(payload).to_bytes(_HEAD, "big") + payload)
                await process.stdin.drain()
                reply = await asyncio.wait_for(_read_frame(process.stdout), REPLY_TIMEOUT_S)
            except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError) as exc:
                await self._stop()
                raise RedactorFailed(str(exc) or type(exc).__name__) from exc
            except asyncio.CancelledError:
                self._abandon()  # its reply may still come: the next batch must not read it
                raise
        return [tuple(row) for row in msgspec.msgpack.decode(reply)]

    async def _running(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            path = lookup("PYTHONPATH")
            env = {**environment(), "PYTHONPATH": PACKAGE_ROOT + (os.pathsep + path if path else "")}
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
            self.starts += 1
        return self._process

    async def aclose(self) -> None:
        async with self._lock:
            await self._stop()

    def _abandon(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()  # the child's cue to exit
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(_HEAD), "big")
    return await reader.readexactly(size)


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """The child: answer frames until the input closes."""
    redactors: dict[tuple[tuple[str, ...], tuple[str, ...]], Redact] = {}
    while True:
        head = source.read(_HEAD)
        if len(head) < _HEAD:
            return
        secrets, patterns, limit, items = msgspec.msgpack.decode(source.read(int.from_bytes(head, "big")))
        key = (tuple(secrets), tuple(patterns))
        redact = redactors.get(key)
        if redact is None:
            if len(redactors) >= MAX_REDACTORS:
                redactors.clear()
            redact = redactors[key] = Redactor(Masker(secrets).scrub, patterns)
        reply = msgspec.msgpack.encode(item_rows(items, redact, limit))
        sink.write(len(reply).to_bytes(_HEAD, "big") + reply)
        sink.flush()


if __name__ == "__main__":
    # The gateway's signals are for the gateway: it closes the pipe when it is done with us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
