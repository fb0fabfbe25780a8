"""Giving a worker's memory back once the burst that grew it is over.

Ten thousand streams leave a worker at twice its idle size although almost nothing they
allocated is still alive (bench/README.md, "What a worker keeps after 10,000 streams"):
cycles of finished tasks and cancelled watchers that only a full collection frees,
freelists of tuples, floats and frames, and a heap whose free chunks glibc keeps mapped.
Left alone, that memory stays until the process exits.

`MemoryTrimmer.tick()` runs once a second on the server's own timer (uvicorn's tick, see
`workers._Server`), reading counters uvicorn keeps anyway: a request pays nothing. When
the worker has grown `GROWTH_BYTES` past the smallest size it was seen at and has been
quiet for `QUIET_S`, it runs a full collection and glibc's `malloc_trim(0)`, which hands
every free page of the heap back to the kernel. A trim that finds little to give back
(the growth is live data: a cache that filled) doubles the wait before the next try, up to
`MAX_INTERVAL_S`; the next burst resets it. Off glibc (macOS, musl) only the collection runs.

What this cannot give back is CPython's small-object allocator's: it returns a 1 MiB arena
only when every object in it is free, and a burst leaves a few long-lived ones in many.
`PYTHONMALLOC=malloc` puts those objects on glibc's heap too, where the trim reaches them,
for more CPU per request (docs/deploy.md, "Memory after a burst").
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("llmmux.server")

MIB = 1 << 20
GROWTH_BYTES = 8 * MIB
"""RSS past the idle floor worth a trim: below it a trim would give back too little to matter."""
QUIET_S = 2.0
"""How long the load must have stayed low before a trim: the burst is over, not pausing."""
QUIET_IN_FLIGHT = 4
"""At most this many requests in flight counts as quiet (a long stream or two, a health probe)."""
QUIET_REQUESTS = 50
"""At most this many new requests in a tick counts as quiet (load balancer probes, a trickle)."""
MIN_INTERVAL_S = 10.0
MAX_INTERVAL_S = 600.0
USEFUL_BYTES = 2 * MIB
"""A trim that gave back less was futile: the next one waits twice as long."""
TICK_S = 1.0


@dataclass(slots=True)
class TrimPolicy:
    """When to trim, from RSS and the server's request counters: a pure class with the clock passed in.

    >>> policy = TrimPolicy()
    >>> policy.due(now=0.0, rss=45 * MIB, requests_total=0, in_flight=0)  # idle: the floor
    False
    >>> policy.due(now=1.0, rss=100 * MIB, requests_total=9000, in_flight=5000)  # the burst
    False
    >>> policy.due(now=2.0, rss=100 * MIB, requests_total=9000, in_flight=0)  # quiet since now
    False
    >>> policy.due(now=4.0, rss=100 * MIB, requests_total=9000, in_flight=0)
    True
    """

    growth: int = GROWTH_BYTES
    quiet_s: float = QUIET_S
    quiet_in_flight: int = QUIET_IN_FLIGHT
    quiet_requests: int = QUIET_REQUESTS
    floor: int | None = None
    """The smallest RSS seen: what this worker needs when idle."""
    interval: float = MIN_INTERVAL_S
    last_at: float = float("-inf")
    next_at: float = 0.0
    quiet_since: float | None = None
    last_total: int | None = None

    def due(self, now: float, rss: int, requests_total: int, in_flight: int) -> bool:
        """Whether to trim now; called once a tick."""
        new = 0 if self.last_total is None else requests_total - self.last_total
        self.last_total = requests_total
        self.floor = rss if self.floor is None else min(self.floor, rss)
        if in_flight > self.quiet_in_flight or new > self.quiet_requests:
            self.quiet_since = None
            # A new burst: what it leaves is worth a try once it is over, however futile the last.
            self.interval = MIN_INTERVAL_S
            self.next_at = min(self.next_at, self.last_at + MIN_INTERVAL_S)
            return False
        if self.quiet_since is None:
            self.quiet_since = now
        return now - self.quiet_since >= self.quiet_s and now >= self.next_at and rss - self.floor >= self.growth

    def trimmed(self, now: float, freed: int) -> None:
        """A trim ran at `now` and gave `freed` bytes back."""
        self.interval = MIN_INTERVAL_S if freed >= USEFUL_BYTES else min(self.interval * 2, MAX_INTERVAL_S)
        self.last_at = now
        self.next_at = now + self.interval


def current_rss() -> int | None:
    """This process's resident bytes now (Linux's /proc); None where there is no such file."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _this_process_symbols() -> Any:
    return ctypes.CDLL(None)


def glibc_malloc_trim(load: Callable[[], Any] = _this_process_symbols) -> Callable[[], object] | None:
    """glibc's `malloc_trim(0)`, or None where the C library is not glibc (musl, macOS, Windows).

    `load` gives the C library's symbols (this process's, by default).
    """
    try:
        libc = load()
        trim = libc.malloc_trim
        libc.gnu_get_libc_version  # noqa: B018  # musl has a malloc_trim that does nothing, and not this
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


class MemoryTrimmer:
    """Calls the policy once a tick and, when it says so, frees cycles and returns free heap to the OS.

    >>> trimmer = MemoryTrimmer()
    >>> trimmer.tick(requests_total=0, in_flight=0)  # from the server's timer, once a second
    """

    def __init__(
        self,
        policy: TrimPolicy | None = None,
        *,
        rss: Callable[[], int | None] = current_rss,
        malloc_trim: Callable[[], object] | None = None,
        collect: Callable[[], int] = gc.collect,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy or TrimPolicy()
        self._rss = rss
        self._malloc_trim = malloc_trim
        self._collect = collect
        self._clock = clock
        self.trims = 0

    @classmethod
    def for_this_process(cls) -> MemoryTrimmer:
        return cls(malloc_trim=glibc_malloc_trim())

    def tick(self, requests_total: int, in_flight: int) -> None:
        rss = self._rss()
        if rss is None:
            return  # no way to see the growth here: nothing is trimmed blind
        now = self._clock()
        if not self.policy.due(now, rss, requests_total, in_flight):
            return
        objects = self._collect()
        if self._malloc_trim is not None:
            self._malloc_trim()
        after = self._rss() or rss
        done = self._clock()
        self.trims += 1
        self.policy.trimmed(done, rss - after)
        log.info(
            "memory after a burst: %.1f -> %.1f MiB in %.0f ms (%d unreachable objects freed, idle floor %.1f MiB)",
            rss / MIB,
            after / MIB,
            (done - now) * 1000,
            objects,
            (self.policy.floor or 0) / MIB,
        )
