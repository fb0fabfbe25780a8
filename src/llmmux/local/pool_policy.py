"""Which models stay loaded: the pool's decisions as a pure class with an injected clock.

The policy holds no I/O and never sleeps; `ModelPool` carries out what it decides and
its tests move time by hand. The rules:

- At most `max_loaded_models` resident (loading, loaded or still unloading), and their
  estimated memory within `max_memory` when a budget is set.
- To make room, evict the least recently used idle models. A model with requests in
  flight is never evicted; it is *drained* instead (no new requests start on it) and
  evicted when its last request finishes, so a queue of requests for another model is
  served in one batch instead of thrashing between the two.
- keep_alive, Ollama's semantics: after its last request a model expires `keep_alive`
  seconds later; 0 unloads at once; forever (any negative input) pins it: never expired
  and never evicted to make room, only unloaded on request.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..config.units import FOREVER, format_size

DEFAULT_MAX_LOADED_MODELS = 2
DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's default: five minutes


class State(enum.Enum):
    LOADING = "loading"
    READY = "ready"
    UNLOADING = "unloading"


@dataclass(frozen=True, slots=True)
class Limits:
    max_loaded_models: int = DEFAULT_MAX_LOADED_MODELS
    max_memory: int | None = None


@dataclass(slots=True)
class Resident:
    """One model that occupies the pool, whatever its state."""

    name: str
    memory: int
    keep_alive: float
    state: State = State.LOADING
    in_flight: int = 0
    last_used: float = 0.0
    loaded_at: float | None = None
    expires_at: float | None = None
    draining: bool = False

    @property
    def pinned(self) -> bool:
        return self.keep_alive == FOREVER

    @property
    def idle(self) -> bool:
        return self.state is State.READY and self.in_flight == 0


@dataclass(frozen=True, slots=True)
class Load:
    """Load now, after unloading `evict`."""

    evict: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Wait:
    """Not yet: `drain` are the busy models whose room this one will take when they finish."""

    drain: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Refuse:
    """Not as things stand: `reason` says why. `permanent` when no unload could ever make room."""

    reason: str
    permanent: bool = False


Decision = Load | Wait | Refuse


class PoolPolicy:
    """The bookkeeping and decisions of a model pool.

    >>> policy = PoolPolicy(Limits(max_loaded_models=1), clock=lambda: 0.0)
    >>> policy.admit("a", memory=100)
    Load(evict=[])
    """

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self.residents: dict[str, Resident] = {}

    # -- decisions --

    def admit(self, name: str, memory: int) -> Decision:
        """Can `name` (not resident) be loaded, and what must go first?"""
        budget = self.limits.max_memory
        if budget is not None and memory > budget:
            reason = f"it needs about {format_size(memory)} and max_memory is {format_size(budget)}"
            return Refuse(reason, permanent=True)
        others = [r for r in self.residents.values() if r.name != name]
        if self._fits(others, memory):
            return Load()
        movable = sorted((r for r in others if not r.pinned), key=lambda r: r.last_used)
        victims = self._victims(others, [r for r in movable if r.idle], memory)
        if victims is not None:
            return Load([r.name for r in victims])
        if self._victims(others, movable, memory) is None:
            pinned = sorted(r.name for r in others if r.pinned)
            return Refuse(f"the pool is full of pinned models ({', '.join(pinned)}); unload one first")
        # A model still loading is about to serve the requests that asked for it: wait for
        # it to finish those rather than drain it before it has served anyone.
        drainable = [r for r in movable if r.state is not State.LOADING]
        drain = self._victims(others, drainable, memory) or drainable
        return Wait([r.name for r in drain])

    def _fits(self, residents: Iterable[Resident], memory: int) -> bool:
        residents = list(residents)
        if len(residents) + 1 > self.limits.max_loaded_models:
            return False
        budget = self.limits.max_memory
        return budget is None or sum(r.memory for r in residents) + memory <= budget

    def _victims(self, residents: list[Resident], candidates: list[Resident], memory: int) -> list[Resident] | None:
        """The shortest LRU prefix of `candidates` whose removal makes room, or None."""
        for n in range(len(candidates) + 1):
            gone = {r.name for r in candidates[:n]}
            if self._fits((r for r in residents if r.name not in gone), memory):
                return candidates[:n]
        return None

    def expired(self) -> list[str]:
        """Idle models whose keep-alive has run out."""
        now = self.clock()
        return [r.name for r in self.residents.values() if r.idle and r.expires_at is not None and r.expires_at <= now]

    def next_expiry(self) -> float | None:
        times = [r.expires_at for r in self.residents.values() if r.idle and r.expires_at is not None]
        return min(times, default=None)

    # -- bookkeeping --

    def reserve(self, name: str, memory: int, keep_alive: float) -> Resident:
        resident = Resident(name, memory, keep_alive, last_used=self.clock())
        self.residents[name] = resident
        return resident

    def loaded(self, name: str) -> None:
        resident = self.residents[name]
        resident.state = State.READY
        resident.loaded_at = self.clock()
        self._expire_later(resident)

    def unloading(self, name: str) -> None:
        resident = self.residents[name]
        resident.state = State.UNLOADING
        resident.expires_at = None

    def remove(self, name: str) -> None:
        self.residents.pop(name, None)

    def start(self, name: str) -> None:
        """A request begins on a ready model."""
        resident = self.residents[name]
        resident.in_flight += 1
        resident.last_used = self.clock()
        resident.expires_at = None

    def finish(self, name: str, keep_alive: float | None = None) -> Resident | None:
        """A request ended; `keep_alive` (the request's own) replaces the model's setting."""
        resident = self.residents.get(name)
        if resident is None:
            return None
        resident.in_flight = max(0, resident.in_flight - 1)
        resident.last_used = self.clock()
        if keep_alive is not None:
            resident.keep_alive = keep_alive
        self._expire_later(resident)
        return resident

    def drain(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.residents:
                self.residents[name].draining = True

    def clear_drains(self) -> None:
        for resident in self.residents.values():
            resident.draining = False

    def _expire_later(self, resident: Resident) -> None:
        if resident.in_flight or resident.state is not State.READY or resident.pinned:
            resident.expires_at = None
        else:
            resident.expires_at = self.clock() + resident.keep_alive
