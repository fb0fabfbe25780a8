"""How often the console's login form may be tried: per client address and for everyone together.

A pure policy with an injected clock. Each address gets `free_tries` failures; every failure
after those locks it out for `backoff_s`, doubling each time up to `max_backoff_s`. A correct
key clears the address's record. Independently, failures from all addresses together above
`global_per_minute` lock the form for everyone with the same doubling, so an attacker who
spreads guesses over many addresses gains nothing (the master key cannot be guessed at
60 a minute; an operator locked out by someone else's flood waits at most `max_backoff_s`).

    throttle = LoginThrottle(LoginLimits())
    wait = throttle.wait("203.0.113.7")     # 0.0: may try now, else seconds to wait
    throttle.failed("203.0.113.7") or throttle.succeeded("203.0.113.7")
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from ..config.model import LoginLimits

MAX_TRACKED = 10_000  # addresses remembered; the least recently failing is forgotten first
WINDOW_S = 60.0


@dataclass(slots=True)
class _Record:
    failures: int = 0
    locked_until: float = 0.0


class LoginThrottle:
    """Counts failed logins and says how long a client must wait before its next try."""

    def __init__(self, limits: LoginLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._clients: OrderedDict[str, _Record] = OrderedDict()
        self._recent: deque[float] = deque()  # when the failures of the last minute happened, all clients
        self._global_lockouts = 0
        self._global_until = 0.0
        self.refused = 0

    def wait(self, client: str) -> float:
        """Seconds before `client` may try again (0.0: now)."""
        now = self._clock()
        record = self._clients.get(client)
        own = record.locked_until - now if record is not None else 0.0
        wait = max(own, self._global_until - now, 0.0)
        if wait > 0:
            self.refused += 1
        return wait

    def failed(self, client: str) -> float:
        """Count a wrong key from `client`; the lockout it now has (0.0: none yet)."""
        now = self._clock()
        limits = self.limits
        record = self._clients.pop(client, None) or _Record()
        self._clients[client] = record  # most recent last, for eviction
        if len(self._clients) > MAX_TRACKED:
            self._clients.popitem(last=False)
        record.failures += 1
        beyond = record.failures - limits.free_tries
        if beyond > 0:
            record.locked_until = now + doubled(limits.backoff_s, beyond, limits.max_backoff_s)
        self._count_globally(now)
        return max(record.locked_until - now, self._global_until - now, 0.0)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def _count_globally(self, now: float) -> None:
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        if self._global_until <= now - WINDOW_S:
            self._global_lockouts = 0  # a quiet minute since the last lockout: start over
        if len(recent) > self.limits.global_per_minute:
            self._global_lockouts += 1
            limits = self.limits
            self._global_until = now + doubled(limits.backoff_s, self._global_lockouts, limits.max_backoff_s)
            recent.clear()


def doubled(base: float, times: int, cap: float) -> float:
    return min(base * 2.0 ** min(times - 1, 40), cap)
