"""The semantic cache's in-process vector index: exact cosine search with numpy.

Entries are grouped by their guard (the digest of system prompt, history, tools and
parameters a hit must match exactly), so a lookup scores only the prompts that could be
hits at all. Within a group the search is one matrix-vector product over unit vectors:
exact, no training, no extra dependency, and measured fast enough up to 100k entries
(bench/cache_semantic.py; bench/README.md has the numbers and the comparison).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
INITIAL_ROWS = 16
MAX_CANDIDATES = 4  # hits above the threshold returned, best first, in case the best has expired


@dataclass(slots=True)
class _Group:
    rows: Vectors
    keys: list[str] = field(default_factory=list)
    expires: list[float] = field(default_factory=list)
    at: dict[str, int] = field(default_factory=dict)


class VectorIndex:
    """Unit vectors by key, searched by cosine similarity within a guard.

    >>> index = VectorIndex()
    >>> index.add("s:1", [1.0, 0.0], guard="g", expires=time.time() + 60)
    >>> index.nearest([0.9, 0.1], "g", threshold=0.9)
    [('s:1', 0.99...)]
    """

    def __init__(self) -> None:
        self._groups: dict[str, _Group] = {}
        self._guard_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._guard_of)

    def add(self, key: str, vector: list[float], guard: str, expires: float) -> None:
        unit = _unit(vector)
        if unit is None:
            return
        if key in self._guard_of:
            self.remove(key)
        group = self._groups.get(guard)
        if group is None or group.rows.shape[1] != unit.shape[0]:
            group = self._groups[guard] = _Group(np.zeros((INITIAL_ROWS, unit.shape[0]), dtype=np.float32))
        count = len(group.keys)
        if count == group.rows.shape[0]:
            grown = np.zeros((count * 2, group.rows.shape[1]), dtype=np.float32)
            grown[:count] = group.rows
            group.rows = grown
        group.rows[count] = unit
        group.keys.append(key)
        group.expires.append(expires)
        group.at[key] = count
        self._guard_of[key] = guard

    def remove(self, key: str) -> None:
        guard = self._guard_of.pop(key, None)
        if guard is None:
            return
        group = self._groups[guard]
        at, last = group.at.pop(key), len(group.keys) - 1
        if at != last:  # move the last row into the hole
            moved = group.keys[last]
            group.rows[at], group.keys[at], group.expires[at] = group.rows[last], moved, group.expires[last]
            group.at[moved] = at
        group.keys.pop()
        group.expires.pop()
        if not group.keys:
            del self._groups[guard]

    def nearest(self, vector: list[float], guard: str, threshold: float) -> list[tuple[str, float]]:
        """Keys in `guard` whose similarity to `vector` is at least `threshold`, best first."""
        group = self._groups.get(guard)
        unit = _unit(vector)
        if group is None or unit is None or unit.shape[0] != group.rows.shape[1]:
            return []
        count = len(group.keys)
        scores = group.rows[:count] @ unit
        top = np.argpartition(-scores, MAX_CANDIDATES)[:MAX_CANDIDATES] if count > MAX_CANDIDATES else range(count)
        best = sorted(top, key=lambda i: -scores[i])
        now = time.time()
        return [(group.keys[i], float(scores[i])) for i in best if scores[i] >= threshold and group.expires[i] > now]

    def clear(self) -> None:
        self._groups.clear()
        self._guard_of.clear()


def _unit(vector: list[float]) -> Vectors | None:
    array = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(array))
    if array.ndim != 1 or norm == 0.0 or not np.isfinite(norm):
        return None
    return array / norm
