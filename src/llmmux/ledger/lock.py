"""A marker that one gateway is writing a SQLite ledger, so a second one is told.

SQLite in WAL mode lets two processes write one file, so two gateways sharing a ledger
work; but it is almost always a mistake (two configs in one folder, a second `llmmux
serve` left running), and their reports then mix. The gateway that starts second warns,
naming the file and the process that holds it. The lock is an advisory `flock` on
`<ledger>.lock`: the kernel drops it when the holder exits, SIGKILL included, so a stale
lock file never blocks or misleads.

    lock = LedgerLock(path)
    holder = lock.acquire()     # None: ours; else the other gateway's pid (0 if unknown)
"""

from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the warning is a convenience, not a guarantee
    fcntl = None  # type: ignore[assignment]

LOCK_SUFFIX = ".lock"


class LedgerLock:
    def __init__(self, ledger: Path) -> None:
        self.path = ledger.with_name(ledger.name + LOCK_SUFFIX)
        self._fd: int | None = None

    def acquire(self) -> int | None:
        """Hold the lock for this process's lifetime; return the holder's pid if another has it."""
        if fcntl is None:
            return None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            return int(holder) if holder.isdigit() else 0
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd  # kept open: closing it would release the lock
        return None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
