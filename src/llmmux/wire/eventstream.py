"""AWS's binary event stream framing (`application/vnd.amazon.eventstream`), both directions.

Bedrock's ConverseStream answers with these frames. Each message is

    total length (u32) | headers length (u32) | prelude CRC32 (u32)
    headers: name length (u8), name, value type (u8), value
    payload
    message CRC32 (u32, over everything before it)

all big-endian. A decoder of our own (rather than botocore's) keeps streaming free of
botocore, which only SigV4 signing needs: Bedrock API keys work without it.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from . import MalformedReply

HeaderValue = bool | int | bytes | str | uuid.UUID

PRELUDE = 12
MAX_PAYLOAD = 16 * 1024 * 1024  # AWS's limits
MAX_HEADERS = 128 * 1024
_PRELUDE = struct.Struct(">III")
_INTS = {
    2: struct.Struct(">b"),
    3: struct.Struct(">h"),
    4: struct.Struct(">i"),
    5: struct.Struct(">q"),
    8: struct.Struct(">q"),
}  # 8 is a timestamp: milliseconds since the epoch


class EventStreamError(MalformedReply):
    """Bytes that are not a valid event stream: wrong lengths, checksums or header types."""


@dataclass(frozen=True, slots=True)
class Message:
    headers: dict[str, HeaderValue]
    payload: bytes


class Decoder:
    """Splits a byte stream into messages as bytes arrive, in any chunking."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> Iterator[Message]:
        """The messages `data` completes, one at a time: a corrupt one raises only after those before it."""
        self._buffer = self._buffer + data if self._buffer else data
        while len(self._buffer) >= PRELUDE:
            total = _check_prelude(self._buffer, 0)
            if len(self._buffer) < total:
                return
            frame, self._buffer = self._buffer[:total], self._buffer[total:]
            yield decode_message(frame)

    @property
    def pending(self) -> int:
        """Bytes of an unfinished message; non-zero at the end of a stream means it was cut."""
        return len(self._buffer)


def _check_prelude(buffer: bytes, start: int) -> int:
    """The message's total length, once its prelude proves sane (before waiting for the rest)."""
    total, headers_length, crc = _PRELUDE.unpack_from(buffer, start)
    payload_length = total - headers_length - PRELUDE - 4
    if headers_length > MAX_HEADERS or payload_length > MAX_PAYLOAD or payload_length < 0:
        raise EventStreamError(f"invalid message lengths: total {total}, headers {headers_length}")
    if zlib.crc32(buffer[start : start + 8]) != crc:
        raise EventStreamError("prelude checksum mismatch")
    return int(total)


def decode_message(frame: bytes) -> Message:
    total, headers_length, prelude_crc = _PRELUDE.unpack_from(frame)
    if total != len(frame) or headers_length > total - PRELUDE - 4:
        raise EventStreamError("message lengths do not add up")
    if zlib.crc32(frame[:8]) != prelude_crc:
        raise EventStreamError("prelude checksum mismatch")
    if zlib.crc32(frame[:-4]) != struct.unpack_from(">I", frame, total - 4)[0]:
        raise EventStreamError("message checksum mismatch")
    headers = _decode_headers(frame[PRELUDE : PRELUDE + headers_length])
    return Message(headers, frame[PRELUDE + headers_length : -4])


def _decode_headers(data: bytes) -> dict[str, HeaderValue]:
    headers: dict[str, HeaderValue] = {}
    at = 0
    try:
        while at < len(data):
            size = data[at]
            name = data[at + 1 : at + 1 + size].decode("utf-8")
            at += 1 + size
            value, at = _decode_value(data, at)
            if name in headers:
                raise EventStreamError(f"duplicate header {name!r}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError(f"malformed headers: {exc}") from None
    return headers


def _decode_value(data: bytes, at: int) -> tuple[HeaderValue, int]:
    kind = data[at]
    at += 1
    if kind in (0, 1):
        return kind == 0, at
    if kind in _INTS:
        number = _INTS[kind]
        return number.unpack_from(data, at)[0], at + number.size
    if kind in (6, 7):
        (length,) = struct.unpack_from(">H", data, at)
        raw = data[at + 2 : at + 2 + length]
        if len(raw) != length:
            raise EventStreamError("header value runs past the headers")
        return (raw if kind == 6 else raw.decode("utf-8")), at + 2 + length
    if kind == 9:
        return uuid.UUID(bytes=bytes(data[at : at + 16])), at + 16
    raise EventStreamError(f"unknown header value type {kind}")


def encode_message(headers: dict[str, HeaderValue], payload: bytes) -> bytes:
    """One frame; strings, bytes, bools and ints (as int32) are the header types LLM streams use."""
    encoded = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = PRELUDE + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", zlib.crc32(head))


def _encode_header(name: str, value: HeaderValue) -> bytes:
    key = name.encode("utf-8")
    if isinstance(value, bool):
        body = bytes([0 if value else 1])
    elif isinstance(value, int):
        body = b"\x04" + struct.pack(">i", value)
    elif isinstance(value, bytes):
        body = b"\x06" + struct.pack(">H", len(value)) + value
    elif isinstance(value, uuid.UUID):
        body = b"\x09" + value.bytes
    else:
        text = value.encode("utf-8")
        body = b"\x07" + struct.pack(">H", len(text)) + text
    return bytes([len(key)]) + key + body
