"""Where cached entries live: the protocol every store follows, and the in-process LRU.

Entries are opaque bytes (`entry.encode`) under a hex digest, with the public model and the
namespace beside them so `clear --model/--key` needs no decoding. A store that fails
(Redis down, a disk error) answers as if empty: the cache may cost a miss, never a request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoreStats:
    entries: int
    bytes: int
    kind: str
    max_bytes: int | None = None


class CacheStore(Protocol):
    kind: str

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, data: bytes, ttl_s: float, public: str, namespace: str) -> None: ...

    async def clear(self, public: str | None = None, namespace: str | None = None) -> int: ...

    async def stats(self) -> StoreStats: ...

    async def semantic(self, since: float) -> list[tuple[str, bytes]]:
        """Semantic entries written since `since` (time.time()), for the in-process vector index."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class _Slot:
    data: bytes
    expires: float
    public: str
    namespace: str
    written: float
    semantic: bool


class MemoryStore:
    """An LRU bounded by the bytes of its entries: the default store, one per process.

    >>> store = MemoryStore(max_bytes=64 << 20)
    """

    kind = "memory"

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._bytes = 0

    async def get(self, key: str) -> bytes | None:
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.expires <= self._clock():
            self._drop(key)
            return None
        self._slots.move_to_end(key)
        return slot.data

    async def put(self, key: str, data: bytes, ttl_s: float, public: str, namespace: str) -> None:
        if len(data) > self.max_bytes:
            return
        if key in self._slots:
            self._drop(key)
        now = self._clock()
        self._slots[key] = _Slot(data, now + ttl_s, public, namespace, now, key.startswith("s:"))
        self._bytes += len(data)
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._slots)))

    async def clear(self, public: str | None = None, namespace: str | None = None) -> int:
        doomed = [
            k
            for k, s in self._slots.items()
            if (public is None or s.public == public) and (namespace is None or s.namespace == namespace)
        ]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def stats(self) -> StoreStats:
        return StoreStats(len(self._slots), self._bytes, self.kind, self.max_bytes)

    def size(self) -> tuple[int, int]:
        """(entries, bytes), for the metrics gauges."""
        return len(self._slots), self._bytes

    async def semantic(self, since: float) -> list[tuple[str, bytes]]:
        now = self._clock()
        return [(k, s.data) for k, s in self._slots.items() if s.semantic and s.written >= since and s.expires > now]

    async def aclose(self) -> None:
        self._slots.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        slot = self._slots.pop(key)
        self._bytes -= len(slot.data)
