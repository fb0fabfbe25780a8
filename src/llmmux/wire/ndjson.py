"""Newline-delimited JSON: incremental line splitting for upstream streams (Ollama's)."""

from __future__ import annotations

from . import MalformedReply

MAX_LINE = 8 * 1024 * 1024
"""The longest line kept waiting for its newline; a stream that exceeds it is broken or hostile."""


class LineTooLong(MalformedReply):
    """A line grew past the splitter's limit without ending."""


class NDJSONSplitter:
    """Splits a byte stream into complete lines as bytes arrive, in any chunking.

    Blank lines are dropped and CRLF endings tolerated. The unfinished tail is bounded by
    `max_line` so a stream that never sends a newline cannot grow memory without limit.

    >>> s = NDJSONSplitter()
    >>> s.feed(b'{"a": 1}\\n{"b"'), s.feed(b': 2}\\n')
    ([b'{"a": 1}'], [b'{"b": 2}'])
    """

    __slots__ = ("_max_line", "_parts", "_size")

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._max_line = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        if b"\n" not in chunk:
            self._keep(chunk)
            return []
        pieces = chunk.split(b"\n")
        if self._parts:
            # Join the held pieces once per line, not once per chunk: no quadratic copying.
            pieces[0] = b"".join(self._parts) + pieces[0]
            self._parts, self._size = [], 0
        self._keep(pieces.pop())
        return [line for line in (p.strip() for p in pieces) if line]

    def _keep(self, tail: bytes) -> None:
        if not tail:
            return
        self._parts.append(tail)
        self._size += len(tail)
        if self._size > self._max_line:
            raise LineTooLong(f"a line passed {self._max_line} bytes without ending")

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished line; non-empty at the end of a stream means it was cut."""
        return b"".join(self._parts).strip()
