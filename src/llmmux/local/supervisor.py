"""One managed model server: started on demand, watched, restarted after a crash, stopped when idle.

States: stopped -> starting -> ready -> stopping -> stopped; a crash (exit while starting
or ready) leads to a restart after a backoff (1 s doubling to 30 s), or to `failed` after
`max_restarts` consecutive crashes; `failed` starts again on the next request. The
server's stdout and stderr go to its log file, never to llmmux's own output.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import IO, Any

from ..config.launch import LaunchSpec
from ..errors import UpstreamConnectError, UpstreamTimeout

log = logging.getLogger("llmmux.local")

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # ready this long: a later crash starts the backoff afresh
PROBE_INTERVAL_S = (0.05, 0.5)
LOG_ROTATE_BYTES = 20 * 1024 * 1024

Probe = Callable[[], Awaitable[bool]]


class ManagedServer:
    """The process behind one provider entry with `launch:`.

    >>> async with server.use():        # doctest: +SKIP
    ...     await inner_provider.complete(request, model)   # the server is ready here
    """

    def __init__(self, name: str, spec: LaunchSpec, port: int, probe: Probe) -> None:
        self.name = name
        self.spec = spec
        self.port = port
        self._probe = probe
        self.state = "stopped"
        self.in_flight = 0
        self.last_used = 0.0
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.crashes = 0
        self.last_exit: int | None = None
        self.group: Any = None  # a SwapGroup, set when providers are bound
        self._process: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Future[None] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._failed_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.returncode is None else None

    @property
    def running(self) -> bool:
        """Occupies its place in a swap group (starting, ready or on its way out)."""
        return self._process is not None and self._process.returncode is None

    # -- use --

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[None]:
        """Hold the server ready for one request; the idle timer starts when the last one ends."""
        self._cancel_idle_timer()
        self.in_flight += 1
        try:
            await self.ensure_ready()
            yield
        finally:
            self.in_flight -= 1
            self.last_used = time.time()
            if self.in_flight == 0:
                self._schedule_idle_stop()
                if self.group is not None:
                    self.group.changed()

    async def ensure_ready(self) -> None:
        """Start the server unless it is ready; concurrent callers share one start."""
        if self.state == "ready" and self.running:
            return
        if self._restart is not None and not self._restart.done():
            await asyncio.shield(self._restart)
            if self.state == "ready":
                return
        if self._starting is None or self._starting.done():
            self._refuse_during_backoff()
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    def _refuse_during_backoff(self) -> None:
        """After failed starts, wait out the backoff instead of spawning on every request."""
        if not self.crashes or self._failed_at is None:
            return
        wait = self._failed_at + _backoff(self.crashes) - time.monotonic()
        if wait > 0:
            raise UpstreamConnectError(
                f"the server for {self.name} failed to start {self.crashes} time(s); "
                f"next try in {wait:.0f}s (see `llmmux logs {self.name}`)",
                provider=self.name,
                retry_after=wait,
            )

    # -- starting --

    async def _start(self) -> None:
        if self.group is not None:
            await self.group.make_room(self)
        self.state = "starting"
        self._stopping = False
        try:
            await self._spawn()
            await self._wait_ready()
        except BaseException:
            await self._kill()
            self.state = "failed" if self.crashes > self.spec.max_restarts else "stopped"
            self._failed_at = time.monotonic()
            raise
        self.state = "ready"
        self._failed_at = None
        self.ready_at = time.time()
        log.info("%s: server ready on port %d (pid %s)", self.name, self.port, self.pid)
        self._schedule_idle_stop()

    async def _spawn(self) -> None:
        argv = self.spec.argv(self.port)
        log_file = _open_log(self.spec.log_file)
        log_file.write(f"--- llmmux {time.strftime('%Y-%m-%d %H:%M:%S')}: starting {' '.join(argv)}\n".encode())
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                env=self.spec.environment(self.port),
                cwd=self.spec.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            log_file.write(f"--- llmmux: cannot start: {exc}\n".encode())
            log_file.close()
            self.crashes += 1
            raise UpstreamConnectError(
                f"cannot start the server for {self.name}: {exc.strerror or exc}", provider=self.name
            ) from None
        self.started_at = time.time()
        self._watcher = asyncio.ensure_future(self._watch(self._process, log_file))

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.spec.start_timeout
        delay = PROBE_INTERVAL_S[0]
        while time.monotonic() < deadline:
            process = self._process
            if process is None or process.returncode is not None:
                code = process.returncode if process is not None else None
                raise UpstreamConnectError(
                    f"the server for {self.name} exited with code {code} while starting; see `llmmux logs {self.name}`",
                    provider=self.name,
                )
            if await self._probe():
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, PROBE_INTERVAL_S[1])
        self.crashes += 1
        raise UpstreamTimeout(
            f"the server for {self.name} was not ready within {self.spec.start_timeout:.0f}s; "
            f"see `llmmux logs {self.name}`",
            provider=self.name,
        )

    # -- crashes --

    async def _watch(self, process: asyncio.subprocess.Process, log_file: IO[bytes]) -> None:
        code = await process.wait()
        self.last_exit = code
        log_file.write(f"--- llmmux {time.strftime('%Y-%m-%d %H:%M:%S')}: exited with code {code}\n".encode())
        log_file.close()  # this run's log: a restart opens it again
        if self._stopping or process is not self._process:
            return
        was = self.state
        if was == "starting":
            self.crashes += 1
            return  # _wait_ready sees the exit and fails the start
        if self.ready_at is not None and time.time() - self.ready_at > STABLE_AFTER_S:
            self.crashes = 0
        self.crashes += 1
        self.state = "crashed"
        log.error("%s: server exited unexpectedly with code %s (crash %d)", self.name, code, self.crashes)
        if self.group is not None:
            self.group.changed()
        if self.spec.restart and self.crashes <= self.spec.max_restarts:
            self._restart = asyncio.ensure_future(self._restart_later())
        else:
            self.state = "failed"

    async def _restart_later(self) -> None:
        await asyncio.sleep(_backoff(self.crashes))
        if self.state != "crashed":
            return
        try:
            self._starting = asyncio.ensure_future(self._start())
            await asyncio.shield(self._starting)
        except Exception as exc:
            log.error("%s: restart failed: %s", self.name, getattr(exc, "message", exc))

    # -- stopping --

    def _schedule_idle_stop(self) -> None:
        self._cancel_idle_timer()
        ttl = self.spec.idle_ttl
        if ttl == float("inf") or self.state != "ready" or self.in_flight:
            return
        self._idle_timer = asyncio.get_running_loop().call_later(ttl, self._idle_stop)

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _idle_stop(self) -> None:
        if self.in_flight == 0 and self.state == "ready":
            task = asyncio.ensure_future(self.stop("idle"))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def stop(self, reason: str = "requested") -> bool:
        """Stop the server (stop signal, then SIGKILL after stop_timeout); False if it was not running."""
        self._cancel_idle_timer()
        if self._restart is not None:
            self._restart.cancel()
        if not self.running:
            self.state = "stopped"
            return False
        log.info("%s: stopping server (%s)", self.name, reason)
        self.state = "stopping"
        await self._kill()
        self.state = "stopped"
        if self.group is not None:
            self.group.changed()
        return True

    async def _kill(self) -> None:
        process = self._process
        self._stopping = True
        if process is not None and process.returncode is None:
            _signal_group(process, self.spec.stop_signal)
            try:
                await asyncio.wait_for(process.wait(), self.spec.stop_timeout)
            except TimeoutError:
                _signal_group(process, signal.SIGKILL)
                await process.wait()
        if self._watcher is not None:
            await asyncio.gather(self._watcher, return_exceptions=True)

    async def aclose(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        await self.stop("llmmux is shutting down")

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "pid": self.pid,
            "port": self.port,
            "in_flight": self.in_flight,
            "last_used": self.last_used or None,
            "started_at": self.started_at,
            "crashes": self.crashes,
            "last_exit": self.last_exit,
            "idle_ttl": None if self.spec.idle_ttl == float("inf") else self.spec.idle_ttl,
            "log_file": str(self.spec.log_file),
            "group": self.spec.group,
        }


def _backoff(crashes: int) -> float:
    return float(min(BACKOFF_MAX_S, BACKOFF_START_S * 2 ** max(0, crashes - 1)))


def _signal_group(process: asyncio.subprocess.Process, sig: int) -> None:
    """Signal the server's whole process group: wrappers (shells, `python -m`) take their children along."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _open_log(path: Any) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > LOG_ROTATE_BYTES:
        path.replace(path.with_name(path.name + ".1"))
    return open(path, "ab", buffering=0)
