"""The AWS event stream codec: AWS's published test vectors, and agreement with botocore's decoder."""

from __future__ import annotations

import uuid

import pytest
from botocore.eventstream import EventStreamBuffer

from llmmux.wire.eventstream import (
    Decoder,
    EventStreamError,
    Message,
    decode_message,
    encode_message,
)

# The encoded/decoded pairs AWS's SDKs share as test vectors (botocore tests/unit/test_eventstream.py).
POSITIVE = [
    (b"\x00\x00\x00\x10\x00\x00\x00\x00\x05\xc2H\xeb}\x98\xc8\xff", {}, b""),
    (b"\x00\x00\x00\x17\x00\x00\x00\x07)\x86\x01X\x04byte\x02\xff\xc2\xf8i\xdc", {"byte": -1}, b""),
    (b"\x00\x00\x00\x19\x00\x00\x00\tq\x0e\x92>\x05short\x03\xff\xff\xb2|\xb6\xcc", {"short": -1}, b""),
    (
        b"\x00\x00\x00\x1d\x00\x00\x00\r\x83\xe3\xf0\xe7\x07integer\x04\xff\xff\xff\xff\x8b\x8e\x12\xeb",
        {"integer": -1},
        b"",
    ),
    (
        b"\x00\x00\x00\x1e\x00\x00\x00\x0e]J\xdb\x8d\x04long\x05\xff\xff\xff\xff\xff\xff\xff\xffK\xc22\xda",
        {"long": -1},
        b"",
    ),
    (b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96", {}, b"{'foo':'bar'}"),
    (
        (
            b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10application/json{'foo':'bar'}"
            b"\x8d\x9c\x08\xb1"
        ),
        {"content-type": "application/json"},
        b"{'foo':'bar'}",
    ),
    (
        (
            b"\x00\x00\x00\x62\x00\x00\x00\x52\x03\xb5\xcb\x9c\x010\x00\x011\x01\x012\x02\x02\x013\x03\x00\x03"
            b"\x014\x04\x00\x00\x00\x04\x015\x05\x00\x00\x00\x00\x00\x00\x00\x05\x016\x06\x00\x05bytes\x017\x07\x00\x04utf8"
            b"\x018\x08\x00\x00\x00\x00\x00\x00\x00\x08\x019\x090123456789abcdef\x63\x35\x36\x71"
        ),
        {
            "0": True,
            "1": False,
            "2": 2,
            "3": 3,
            "4": 4,
            "5": 5,
            "6": b"bytes",
            "7": "utf8",
            "8": 8,
            "9": uuid.UUID(bytes=b"0123456789abcdef"),
        },
        b"",
    ),
    (
        (
            b"\x00\x00\x00\x52\x00\x00\x00\x42\xbf\x23\x63\x7e\x0d:message-type\x07\x00\x05error\x0b:error-code\x07\x00"
            b"\x04code\x0e:error-message\x07\x00\x07message\x6b\x6c\xea\x3d"
        ),
        {":message-type": "error", ":error-code": "code", ":error-message": "message"},
        b"",
    ),
]
NEGATIVE = [
    (b"\x01\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'}\xc3e96", "length"),
    (b"\x00\x00\x00\x1d\x00\x00\x00\x00\xfdR\x8cZ{'foo':'bar'\x8d\xc3e96", "checksum"),
    (
        (
            b"\x00\x00\x00=\x00\x00\x00 \x07\xfd\x83\x96\x0ccontent+type\x07\x00\x10application/json{'foo':'bar'}"
            b"\x8d\x9c\x08\xb1"
        ),
        "checksum",
    ),
    (
        (
            b"\x00\x00\x00=\xff\x00\x01\x02\x07\xfd\x83\x96\x0ccontent-type\x07\x00\x10application/json{'foo':'bar'}"
            b"\x8d\x9c\x08\xb1"
        ),
        "lengths",
    ),
    (b"\x00\x00\x00\x24\x00\x00\x00\x14\x4b\xb9\x82\xd0\x04test\x04asdf\x04test\x04asdf\xf3\xf4\x75\x63", "duplicate"),
]


@pytest.mark.parametrize(("encoded", "headers", "payload"), POSITIVE)
def test_aws_vectors_decode(encoded: bytes, headers: dict[str, object], payload: bytes) -> None:
    assert list(Decoder().feed(encoded)) == [Message(headers, payload)]


@pytest.mark.parametrize(("encoded", "reason"), NEGATIVE)
def test_corrupt_frames_are_refused(encoded: bytes, reason: str) -> None:
    with pytest.raises(EventStreamError, match=reason):
        list(Decoder().feed(encoded))


def test_messages_arrive_in_any_chunking() -> None:
    stream = b"".join(encoded for encoded, _, _ in POSITIVE)
    for size in (1, 7, 64):
        decoder = Decoder()
        messages = [m for i in range(0, len(stream), size) for m in decoder.feed(stream[i : i + size])]
        assert [(m.headers, m.payload) for m in messages] == [(h, p) for _, h, p in POSITIVE]
        assert decoder.pending == 0


def test_a_cut_message_stays_pending() -> None:
    decoder = Decoder()
    assert list(decoder.feed(POSITIVE[6][0][:-5])) == []
    assert decoder.pending == len(POSITIVE[6][0]) - 5


def test_encoded_frames_are_what_botocore_decodes() -> None:
    headers = {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
        "count": 7,
        "flag": True,
        "raw": b"\x00\x01",
        "id": uuid.UUID(int=5),
    }
    frame = encode_message(headers, b'{"delta":{"text":"hi"}}')
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    [decoded] = list(buffer)
    assert decoded.headers == {**headers, "id": uuid.UUID(int=5).bytes}  # botocore leaves uuids as bytes
    assert decoded.payload == b'{"delta":{"text":"hi"}}'
    assert decode_message(frame) == Message(headers, b'{"delta":{"text":"hi"}}')


def test_messages_before_a_corrupt_one_are_still_delivered() -> None:
    messages = Decoder().feed(POSITIVE[5][0] + NEGATIVE[1][0])
    assert next(messages).payload == b"{'foo':'bar'}"
    with pytest.raises(EventStreamError, match="checksum"):
        next(messages)
