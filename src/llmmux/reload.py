"""Hot reload: the config is re-read on SIGHUP or when its files change.

Files are polled (their modification time and size, every `interval_s`), which needs no
platform file-watching API and costs a few `stat` calls. A bad new config is rejected
with its errors logged, and the old one stays (`Router.reload_from_source`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .config.loader import MAPPINGS_FILE, PROVIDERS_FILE, SINGLE_FILE
from .tasks import cancel_and_wait

if TYPE_CHECKING:
    from .config.model import Config
    from .router import Router

log = logging.getLogger("llmmux.reload")

DEFAULT_INTERVAL_S = 2.0
Snapshot = dict[str, tuple[int, int] | None]


def config_files(source: str) -> list[Path]:
    path = Path(source)
    if path.is_dir():
        return [path / SINGLE_FILE, path / PROVIDERS_FILE, path / MAPPINGS_FILE]
    return [path]


def snapshot(files: list[Path]) -> Snapshot:
    """Each file's (mtime in ns, size), or None when it does not exist."""
    out: Snapshot = {}
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            out[str(file)] = None
        else:
            out[str(file)] = (stat.st_mtime_ns, stat.st_size)
    return out


class ConfigWatcher:
    """Reloads `router` when its config files change, or on SIGHUP (or `trigger()`)."""

    def __init__(self, router: Router, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.router = router
        self.interval_s = interval_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._signal = False
        self.reloads = 0
        # Told (why, the config before) after each reload that took effect: the audit log.
        self.on_reloaded: Callable[[str, Config], Awaitable[None]] | None = None

    def start(self, *, sighup: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if sighup and hasattr(signal, "SIGHUP") and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, self.trigger)
            self._signal = True
        source = self.router.config.source
        # The baseline is taken now, so a change made before the task first runs is seen.
        seen = snapshot(config_files(source)) if source != "<dict>" else {}
        self._task = loop.create_task(self._run(seen), name="llmmux-config-watcher")

    def trigger(self) -> None:
        """Reload now (what SIGHUP does)."""
        self._wake.set()

    async def stop(self) -> None:
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal = False
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self, seen: Snapshot) -> None:
        watching = self.router.config.source != "<dict>"
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            asked, changed = self._wake.is_set(), False
            self._wake.clear()
            if watching:
                now = snapshot(config_files(self.router.config.source))
                changed, seen = now != seen, now
            if asked or changed:
                why = "SIGHUP" if asked else "file changed"
                log.info("reloading configuration (%s)", why)
                before = self.router.config
                try:
                    if await self.router.reload_from_source():
                        self.reloads += 1
                        if self.on_reloaded is not None:
                            await self.on_reloaded(why, before)
                except Exception:  # a reload must never take the server down
                    log.exception("configuration reload failed; keeping the previous one")
