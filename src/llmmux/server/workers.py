"""Running the app: one process, or N workers that each own a SO_REUSEPORT socket.

With one shared listening socket, the worker that wakes first tends to take every
keep-alive connection and the others sit idle. With SO_REUSEPORT the kernel spreads new
connections across the workers' own sockets, so load is shared.

With `holder` set, the supervisor first forks the state holder (`shared/holder.py`) that
the workers share limits, health and keys through, and restarts it if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from ..shared.holder import run_holder
from .app import App
from .connections import protocol_factory
from .memory_trim import MemoryTrimmer

log = logging.getLogger("llmmux.server")

AppFactory = Callable[[], App]
RESTART_BACKOFF_S = 1.0
HOLDER_START_S = 5.0
MOST_OPEN_FILES = 1 << 20  # Linux's default nr_open: a hard limit of "unlimited" is lifted this far
# Connections the kernel queues for a worker that is busy (uvicorn's default: 2,048). Past
# it, a handshake's last ACK is dropped and the client, which believes it is connected,
# is reset a minute later: 10,000 streams opening while the workers were saturated lost
# hundreds that way. The kernel caps it at net.core.somaxconn (4,096 by default since
# Linux 5.4; docs/deploy.md).
LISTEN_BACKLOG = 65535
TICK_S = 1.0
"""How often a worker's server looks whether to stop and the memory trimmer looks at the RSS
(uvicorn's 0.1 s woke an idle worker ten times a second; a signal to stop wakes it at once)."""


def bind(host: str, port: int, reuse_port: bool, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def _uvicorn_config(app: App) -> uvicorn.Config:
    settings = app.settings
    return uvicorn.Config(
        app,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http=protocol_factory(settings),  # httptools, with deadlines and a per-client cap
        lifespan="on",
        backlog=LISTEN_BACKLOG,  # uvicorn listens again on the socket it is handed, with this
        log_config=None,  # uvicorn's records go to the root handler: JSON and masked like ours
        access_log=False,
        log_level="warning",
        timeout_keep_alive=max(1, math.ceil(settings.keep_alive_timeout_s)),
        server_header=False,
        date_header=False,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when a signal asks it to stop, and giving memory back after a burst."""

    def __init__(self, app: App) -> None:
        super().__init__(_uvicorn_config(app))
        self._app = app
        self._trimmer = MemoryTrimmer.for_this_process()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None

    async def main_loop(self) -> None:
        """uvicorn's, ticking every TICK_S instead of every 0.1 s; `handle_exit` wakes it at once."""
        self._loop, self._woken = asyncio.get_running_loop(), asyncio.Event()
        while not await self.on_tick(0):  # 0: uvicorn's once-a-second work runs at every tick
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK_S):
                    await self._woken.wait()

    async def on_tick(self, counter: int) -> bool:
        # counters uvicorn keeps anyway: a request pays nothing for this
        self._trimmer.tick(self.server_state.total_requests, len(self.server_state.tasks))
        return await super().on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.begin_shutdown()
        super().handle_exit(sig, frame)
        if self._loop is not None and self._woken is not None:
            self._loop.call_soon_threadsafe(self._woken.set)  # a signal handler: not on the loop's turn

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's, less raising the signal again once the graceful stop is done.

        Re-raised, SIGTERM kills the interpreter by the default action: exit status -15 for
        a clean stop, and no atexit, so log lines still queued for stderr were lost.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_one(app: App, sock: socket.socket) -> None:
    _Server(app).run(sockets=[sock])


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one, and return the limit now in force.

    Every open stream holds two sockets, the client's and the upstream's, so the common
    soft limit of 1,024 caps a process near 500 streams; the hard limit is what the system
    allows an unprivileged process (docs/deploy.md says how to raise it).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MOST_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, wanted, exc)
    return soft


def serve(factory: AppFactory, host: str, port: int, workers: int, holder: str | None = None) -> None:
    """Serve until SIGINT or SIGTERM; restarts a worker that dies."""
    raise_open_file_limit()  # before forking: every worker inherits it
    # What start-up built lives as long as the process: out of the collector's reach, a
    # worker's full collections no longer walk it, nor write to (and so copy) the pages it
    # shares with the supervisor. Python's documented recipe for a server that forks.
    gc.freeze()
    if workers <= 1:
        serve_one(factory(), bind(host, port, reuse_port=False))
        return
    reuse_port = hasattr(socket, "SO_REUSEPORT")
    # Bind once in the parent so a taken port fails fast and clearly, before forking. With
    # SO_REUSEPORT the parent's socket must not listen, or it would be handed connections.
    guard = bind(host, port, reuse_port, listen=not reuse_port)
    _Supervisor(factory, host, port, workers, guard if not reuse_port else None, holder).run()
    guard.close()


class _Supervisor:
    def __init__(
        self,
        factory: AppFactory,
        host: str,
        port: int,
        workers: int,
        shared: socket.socket | None,
        holder: str | None = None,
    ) -> None:
        self._factory = factory
        self._holder_path = holder
        self._holder: multiprocessing.process.BaseProcess | None = None
        self._host, self._port = host, port
        self._count = workers
        self._shared = shared
        self._context = multiprocessing.get_context("fork")
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._stopping = False
        self._woken, self._wake = os.pipe()  # written by the stop signal's handler
        os.set_blocking(self._wake, False)  # a handler must never block: one byte waiting is enough

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._forward)  # each worker reloads its own config
        self._start_holder()
        self._processes = [self._start() for _ in range(self._count)]
        while not self._stopping:
            self._wait_for_exit()
            if self._holder is not None and not self._holder.is_alive() and not self._stopping:
                log.error("the state holder exited with %s; restarting it", self._holder.exitcode)
                self._start_holder()
            for i, process in enumerate(self._processes):
                if not process.is_alive() and not self._stopping:
                    log.error("worker %s exited with %s; restarting", process.pid, process.exitcode)
                    time.sleep(RESTART_BACKOFF_S)
                    self._processes[i] = self._start()
        for process in self._processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signal.SIGTERM)
        for process in self._processes:
            process.join(timeout=30)
        if self._holder is not None and self._holder.is_alive() and self._holder.pid:
            os.kill(self._holder.pid, signal.SIGTERM)
            self._holder.join(timeout=5)

    def _wait_for_exit(self) -> None:
        """Sleep until a worker or the holder exits, or a signal asks to stop (no polling while all is well)."""
        children = [*self._processes, *([self._holder] if self._holder is not None else [])]
        multiprocessing.connection.wait([*(child.sentinel for child in children), self._woken])

    def _start_holder(self) -> None:
        if self._holder_path is None:
            return
        self._holder = self._context.Process(target=run_holder, args=(self._holder_path,), daemon=False)
        self._holder.start()
        deadline = time.monotonic() + HOLDER_START_S
        while not os.path.exists(self._holder_path) and time.monotonic() < deadline:
            time.sleep(0.01)  # workers connecting before it listens would start degraded

    def _start(self) -> multiprocessing.process.BaseProcess:
        process = self._context.Process(target=self._worker, daemon=False)
        process.start()
        return process

    def _worker(self) -> None:
        if hasattr(signal, "SIGHUP"):
            # Not the parent's forwarder; the app installs its own reload handler at startup.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        sock = self._shared or bind(self._host, self._port, reuse_port=True)
        try:
            serve_one(self._factory(), sock)
        finally:
            logging.shutdown()  # a forked worker leaves by os._exit, past atexit: write its queued lines

    def _forward(self, signum: int, frame: object) -> None:
        for process in self._processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signum)

    def _stop(self, signum: int, frame: object) -> None:
        self._stopping = True
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake, b"x")
