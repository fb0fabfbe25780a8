"""One box, several workers: the supervisor's holder process keeps the shared state.

Workers connect over a Unix socket and send small msgpack frames; the holder answers each
from `StoreCore` in one step of its event loop, so operations are atomic without locks, and
a waiter is woken by the kernel, never by a busy-lock retry loop (SQLite's busy handler
sleeps in milliseconds). `bench/shared_state.py` measures it: a round trip costs about
0.1 ms, which is why most requests take none: workers lease slices of each limit
(`quota.py`) and admit from them locally. Not measured: a lock over shared memory, which
would be cheaper per operation but needs fixed-size records.

Frames are a 4-byte big-endian length, then a msgpack array:
    request   [seq, op, *args]       reply   [seq, ok, result]       push   [0, channel, message]
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
from typing import Any

import msgspec

from ..tasks import cancel_and_wait
from .core import StoreCore
from .store import Ask, Budget, BudgetCheck, Giveback, Grant, Handler

log = logging.getLogger("llmmux.shared")

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024
PUSH = 0

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


class HolderError(Exception):
    """The holder refused an operation (a bug, not an outage)."""


def frame(payload: Any) -> bytes:
    body = _encode(payload)
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    size = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
    if size > MAX_FRAME:
        raise HolderError(f"frame of {size} bytes")
    return _decode(await reader.readexactly(size))


# -- the holder process --


class Holder:
    """Serves `StoreCore` to every worker; published messages go to every connection."""

    def __init__(self, core: StoreCore | None = None) -> None:
        self.core = core or StoreCore()
        self._writers: set[asyncio.StreamWriter] = set()

    async def serve(self, path: str) -> None:
        server = await asyncio.start_unix_server(self._connection, path=path)
        os.chmod(path, 0o600)  # only the gateway's user may change its limits
        try:
            async with server:
                await server.serve_forever()
        finally:
            for writer in list(self._writers):
                writer.close()  # the workers see the holder gone, as when its process dies

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                seq, op, *args = await read_frame(reader)
                writer.write(frame(self._answer(seq, op, args)))
        except (asyncio.IncompleteReadError, ConnectionError, HolderError, ValueError, msgspec.DecodeError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _answer(self, seq: int, op: str, args: list[Any]) -> list[Any]:
        core = self.core
        try:
            if op == "acquire":
                result: Any = core.acquire(args[0], msgspec.convert(args[1], Ask))
            elif op == "acquire_all":
                result = core.acquire_all(msgspec.convert(args[0], list[tuple[str, Ask]]))
            elif op == "release":
                name, lease, tpm, tokens, spend_key, cost, back = args
                back = None if back is None else msgspec.convert(back, Giveback)
                core.release(name, lease, tpm, tokens, spend_key, cost, back)
                result = None
            elif op == "charge_budgets":
                result = core.charge_budgets(msgspec.convert(args[0], list[Budget]), float(args[1]))
            elif op == "publish":
                self._broadcast(args[0], args[1])
                result = None
            elif op in OPS:
                result = getattr(core, op)(*args)
            else:
                return [seq, False, f"unknown operation {op!r}"]
        except (TypeError, IndexError, ValueError, msgspec.ValidationError) as exc:
            return [seq, False, f"{op}: {exc}"]
        return [seq, True, result]

    def _broadcast(self, channel: str, message: bytes) -> None:
        data = frame([PUSH, channel, message])
        for writer in list(self._writers):
            if not writer.is_closing():
                writer.write(data)


OPS = frozenset({"renew", "streak", "incr", "heartbeat", "instances", "put_blob", "get_blob", "delete_blob", "ping"})


def run_holder(path: str) -> None:
    """The holder process's body (forked by the supervisor before the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor stops it last, with SIGTERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the supervisor's handler, inherited by fork
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    try:
        import uvloop

        uvloop.run(Holder().serve(path))
    except ImportError:  # pragma: no cover - uvloop is a dependency; Windows has no fork anyway
        asyncio.run(Holder().serve(path))


# -- a worker's side --


class HolderStore:
    """A worker's connection to the holder: the `SharedStore` operations over the socket."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._seq = 0
        self._handlers: list[Handler] = []
        self._listener: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None

    async def start(self) -> None:
        await self._connect()

    async def _connect(self) -> None:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return
            self._reader, self._writer = await asyncio.open_unix_connection(self.path)
            self._listener = asyncio.create_task(self._listen(self._reader), name="llmmux-holder")

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await read_frame(reader)
                if message[0] == PUSH:
                    for handler in self._handlers:
                        handler(message[1], message[2])
                    continue
                future = self._pending.pop(message[0], None)
                if future is not None and not future.done():
                    if message[1]:
                        future.set_result(message[2])
                    else:
                        future.set_exception(HolderError(message[2]))
        except (asyncio.IncompleteReadError, ConnectionError, HolderError, msgspec.DecodeError):
            pass
        finally:
            self._drop(ConnectionError("the state holder closed the connection"))

    def _drop(self, error: Exception) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)

    async def _call(self, op: str, *args: Any) -> Any:
        if self._writer is None or self._writer.is_closing():
            await self._connect()
        assert self._writer is not None
        self._seq += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[self._seq] = future
        self._writer.write(frame([self._seq, op, *args]))
        return await future

    async def aclose(self) -> None:
        await cancel_and_wait(self._listener)
        self._drop(ConnectionError("closed"))

    async def ping(self) -> None:
        await self._call("ping")

    async def acquire(self, name: str, ask: Ask) -> Grant:
        return msgspec.convert(await self._call("acquire", name, ask), Grant)

    async def acquire_all(self, asks: list[tuple[str, Ask]]) -> list[Grant]:
        return msgspec.convert(await self._call("acquire_all", asks), list[Grant])

    async def release(
        self,
        name: str,
        lease: str | None,
        tpm: int | None,
        tokens: int,
        spend_key: str | None,
        cost: float,
        back: Giveback | None = None,
    ) -> None:
        await self._call("release", name, lease, tpm, tokens, spend_key, cost, back)

    async def renew(self, name: str, leases: list[str], ttl_s: float) -> None:
        await self._call("renew", name, leases, ttl_s)

    async def charge_budgets(self, budgets: list[Budget], cost: float) -> BudgetCheck:
        spends, over = await self._call("charge_budgets", budgets, cost)
        return BudgetCheck([float(s) for s in spends], over)

    async def streak(self, counter: str, failed: bool) -> int:
        return int(await self._call("streak", counter, failed))

    async def incr(self, counter: str) -> int:
        return int(await self._call("incr", counter))

    async def publish(self, channel: str, message: bytes) -> None:
        await self._call("publish", channel, message)

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def heartbeat(self, instance: str, info: bytes, ttl_s: float) -> None:
        await self._call("heartbeat", instance, info, ttl_s)

    async def instances(self) -> list[bytes]:
        return list(await self._call("instances"))

    async def put_blob(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._call("put_blob", key, value, ttl_s)

    async def get_blob(self, key: str) -> bytes | None:
        found = await self._call("get_blob", key)
        return None if found is None else bytes(found)

    async def delete_blob(self, key: str) -> bool:
        return bool(await self._call("delete_blob", key))
