"""Telling, as tokens arrive, that a model's output has fallen into a loop.

Small local models (the embedded 135M SmolLM2 most of all) can fall into a cycle: the same
line, sentence or block written over and over until the output cap. A client then gets a
reply cut at `length`, which coding agents treat as a failed turn (Codex) or answer by asking
the model to go on, with a longer prompt each time (Claude Code). A loop is recognised when
the tail of the output is one unit repeated back to back: `repeats` copies of it, and at
least `min_chars` characters of repetition in all (so "ha" must repeat 128 times, a 70-
character line 4 times).

The check is incremental and cheap: each fed piece is appended to a bounded tail, and only
the places where the last few characters occurred before (found by `str.rfind`, in C) are
tried as the loop's period, each confirmed by one string comparison.

    >>> detector = RepetitionDetector(LoopGuard(repeats=3, min_chars=12))
    >>> detector.feed("Sure. ") or detector.feed("I will read it. ") or detector.feed("I will read it. ")
    False
    >>> detector.feed("I will read it. ")
    True
"""

from __future__ import annotations

from dataclasses import dataclass

ANCHOR_CHARS = 8  # how much of the tail is looked up to find candidate periods
MAX_CANDIDATES = 8  # earlier occurrences of the anchor tried, nearest first


@dataclass(frozen=True, slots=True)
class LoopGuard:
    """When output counts as looping (`loop_guard:` on a local model; see the README's "Loop guard").

    The defaults stop a model at the 4th back-to-back copy of a line or paragraph, and are
    lenient enough for repetitive but finite output (a table's rows differ; ten identical
    lines of 20 characters do not reach `min_chars`).
    """

    repeats: int = 4
    """Back-to-back copies of the unit that make a loop."""
    min_chars: int = 256
    """Characters the copies must span together (short units need more copies)."""
    max_period: int = 1024
    """The longest unit looked for, in characters."""

    def needed(self, period: int) -> int:
        """Copies of a `period`-character unit that make a loop."""
        return max(self.repeats, -(-self.min_chars // period))


class RepetitionDetector:
    """Feed it the text of a reply, piece by piece; `feed` turns True once the tail loops."""

    def __init__(self, guard: LoopGuard) -> None:
        self.guard = guard
        self._tail = ""
        self._keep = max(guard.repeats * guard.max_period, guard.min_chars + guard.max_period)

    def feed(self, text: str) -> bool:
        if not text:
            return False
        tail = self._tail + text
        if len(tail) > 2 * self._keep:  # trimmed in steps, not on every piece
            tail = tail[-self._keep :]
        self._tail = tail
        return self.period() is not None

    def period(self) -> int | None:
        """The length of the unit the tail repeats, if it loops."""
        tail, guard = self._tail, self.guard
        size = len(tail)
        if size < guard.min_chars or size < ANCHOR_CHARS * 2:
            return None
        anchor_at = size - ANCHOR_CHARS
        anchor = tail[anchor_at:]
        start, end = max(0, anchor_at - guard.max_period), size - 1  # no further back than a period
        for _ in range(MAX_CANDIDATES):
            found = tail.rfind(anchor, start, end)
            if found < 0:
                return None
            period = anchor_at - found
            if period > guard.max_period:
                return None
            if _repeats(tail, period, guard.needed(period)):
                return period
            end = found + ANCHOR_CHARS - 1
        return None


def _repeats(tail: str, period: int, copies: int) -> bool:
    """Whether `tail` ends with `copies` copies of its last `period` characters."""
    size = len(tail)
    if copies * period > size:
        return False
    unit = tail[size - period :]
    # Copy by copy from the end: a candidate that is no loop fails at the first one.
    return all(tail.startswith(unit, size - k * period) for k in range(2, copies + 1))
