"""Server-sent events: incremental parsing of upstream streams and framing for clients."""

from __future__ import annotations

from typing import Protocol

from ..types import ChatChunk


class SSEParser:
    """Splits a byte stream into (event, data) pairs as bytes arrive, in any chunking.

    Only `event:` and `data:` fields matter to LLM APIs; comments (keep-alive pings such as
    `: OPENROUTER PROCESSING`), `id:` and `retry:` are skipped.
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[bytes, bytes]]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            # Normalise CRLF only when a whole pair is present; a trailing CR waits for its LF.
            keep_cr = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n")
            if not keep_cr:
                buffer = buffer.replace(b"\r", b"\n")
        # One split in C for a whole read of events, not a find and a slice per event.
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop()
        events: list[tuple[bytes, bytes]] = []
        for block in blocks:
            if block.startswith(b"data:") and b"\n" not in block:
                events.append((b"", block[5:].lstrip(b" ")))  # the common case: one data line, no event name
            elif (event := _parse_event(block)) is not None:
                events.append(event)
        return events

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished event; non-empty at the end of a stream means it was cut."""
        return self._buffer.strip()


class EventReader(Protocol):
    """A stream's translator: an event's chunk (None for one that makes none), and whether
    the stream's last event has arrived."""

    @property
    def finished(self) -> bool: ...

    def feed(self, name: bytes, data: bytes) -> ChatChunk | None: ...


def read_batch(parser: SSEParser, reader: EventReader, data: bytes) -> tuple[list[ChatChunk], Exception | None]:
    """The chunks of the events that one upstream read completed, in order, up to the last
    event; and the error an event raised, which the caller raises after sending the chunks
    before it (they came first, so the client sees them first, as one at a time would)."""
    batch: list[ChatChunk] = []
    try:
        for name, payload in parser.feed(data):
            chunk = reader.feed(name, payload)
            if chunk is not None:
                batch.append(chunk)
            if reader.finished:
                break
    except Exception as exc:  # a wire module's MalformedReply or ErrorReply, or a translator's own error
        return batch, exc
    return batch, None


def _parse_event(block: bytes) -> tuple[bytes, bytes] | None:
    name = b""
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip()
    if not data and not name:
        return None
    return name, b"\n".join(data)


DONE = b"data: [DONE]\n\n"


def frame(data: bytes, event: bytes | None = None) -> bytes:
    if event:
        return b"event: " + event + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
