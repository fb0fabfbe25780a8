"""Body-store rows from what a finished request left behind: pure functions, no I/O.

`body_item` runs on the event loop and only takes what is in hand (the client's request
bytes, an OpenAI-format upstream's reply bytes, a stream's text), cut to the size limit plus
a margin. `item_rows` redacts and cuts them into rows, on the body log's own thread.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Sequence

import msgspec

from ..events import RequestRecord
from ..wire.openai import encode_chat_request, encode_chat_response
from .store import Row

CUT_MARGIN = 512
SECRET_HEADERS = frozenset({b"authorization", b"x-api-key", b"api-key", b"cookie", b"proxy-authorization"})
SEPARATOR = "\x00"  # JSON never holds a raw NUL: the parts of rows are redacted as one text
REDACT_TOGETHER = 64  # bodies a redaction pass takes: a 100 KB text, where a pass's fixed cost is spread thin

Item = tuple[str, float, Sequence[Sequence[bytes]] | None, bytes, bytes]
"""(request_id, started, client headers, request bytes, response bytes): what crosses to the redactor."""
Redact = Callable[[str], str]
WordStarts = Callable[[bytes], list[int]]


def body_item(record: RequestRecord, limit: int) -> Item:
    """The bodies as they crossed the wire where llmmux has those bytes (the client's request, an
    OpenAI-format upstream's reply), else encoded in OpenAI's format (a stream: its text)."""
    context = record.context
    # Cut before redacting (a huge prompt costs no more than the limit), with a margin so a
    # secret straddling the limit is still whole when the masking rules look at it.
    margin = limit + CUT_MARGIN
    request = response = b""
    if context.body is not None:
        request = context.body[:margin]
    elif record.request is not None:
        request = encode_chat_request(record.request, record.public_model, stream=record.stream)[:margin]
    if record.response is not None:
        raw = record.response.raw
        response = (raw if raw is not None else encode_chat_response(record.response, record.public_model))[:margin]
    elif record.output is not None:
        response = msgspec.json.encode({"streamed": True, "content": "".join(record.output)})[:margin]
    return (context.request_id, context.started, context.headers, request, response)


def item_rows(
    items: Sequence[Item],
    redact: Redact,
    limit: int,
    *,
    together: bool = True,
    word_starts: WordStarts | None = None,
    headers: HeaderPieces | None = None,
) -> list[Row]:
    """The rows of `items`, redacted `REDACT_TOGETHER` bodies at a time (see `_redact_together`),
    or each text alone when not `together` (rules that see where a text begins or ends).

    `word_starts` (`Masker.ascii_word_starts`, given when `redact` is the masker alone): ASCII
    texts are searched as bytes all at once and only those holding a credential word or a
    known secret are redacted (`_redact_ascii`), the rest kept as they came. Headers that
    `headers` has redacted already (each header alone) are not searched again.
    """
    headers = headers or _UNREDACTED
    rows: list[Row] = []
    for start in range(0, len(items), REDACT_TOGETHER):
        chunk = items[start : start + REDACT_TOGETHER]
        if word_starts is not None:
            texts = _redact_bodies(redact, word_starts, [part for item in chunk for part in (item[3], item[4])])
            for i, item in enumerate(chunk):
                shown = headers.json(item[2]).decode()
                if headers.redact is None:
                    shown = redact(shown)
                rows.append(_row(item[0], item[1], shown, texts[2 * i], texts[2 * i + 1], limit))
            continue
        parts = [_text(part) for item in chunk for part in (headers.json(item[2]), item[3], item[4])]
        texts = _redact_together(redact, parts) if together else [redact(part) for part in parts]
        for i, item in enumerate(chunk):
            rows.append(_row(item[0], item[1], texts[3 * i], texts[3 * i + 1], texts[3 * i + 2], limit))
    return rows


def _row(request_id: str, started: float, headers: str, request: str, response: str, limit: int) -> Row:
    request, response = cut(request, limit), cut(response, limit)
    size = len(headers) + len(request) + len(response)
    return (request_id, started, headers, request or None, response or None, size)


def cut(text: str, limit: int) -> str:
    """`text` within `limit` UTF-8 bytes, saying where it was cut."""
    if len(text) * 4 <= limit:  # no character is over 4 bytes in UTF-8: surely within
        return text
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore") + f"\n[... cut at {limit} bytes]"


def masked_headers(headers: Iterable[Sequence[bytes]] | None) -> dict[str, str]:
    """The client's headers with every credential masked to its scheme ("Bearer ****").

    Nothing of the secret shows (the request's row names its key), and the redaction pass
    after finds nothing left to mask here.
    """
    return msgspec.json.decode(_UNREDACTED.json(headers))  # type: ignore[no-any-return]


def headers_json(headers: Iterable[Sequence[bytes]] | None) -> bytes:
    """`masked_headers` as a JSON object (not yet redacted)."""
    return _UNREDACTED.json(headers)


class HeaderPieces:
    """The client's headers as a JSON object, from one cached `"name":"value"` piece per header.

    A client sends the same few headers on every request (host, content type, its key, its
    user agent): each is masked, redacted by `redact` (when given) and encoded once, not once
    a request. A holder makes a new one when `redact` changes (the masker learnt a secret).
    Only the body log's thread fills it; a piece is added whole, never changed.
    """

    def __init__(self, redact: Redact | None = None) -> None:
        self.redact = redact
        self._pieces: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}

    def json(self, headers: Iterable[Sequence[bytes]] | None) -> bytes:
        pieces: dict[bytes, bytes] = {}
        cache = self._pieces
        for name, value in headers or ():
            key = (name, value)
            found = cache.get(key)
            if found is None:
                if len(cache) >= MAX_HEADER_PIECES:  # unique values (request ids): start again
                    cache.clear()
                found = cache[key] = self._piece(name, value)
            pieces[found[0]] = found[1]  # a repeated name: the last value, as a dict keeps it
        return b"{" + b",".join(pieces.values()) + b"}"

    def _piece(self, name: bytes, value: bytes) -> tuple[bytes, bytes]:
        text = value.decode("latin-1")
        if name.lower() in SECRET_HEADERS:
            scheme, space, _ = text.partition(" ")
            text = f"{scheme} ****" if space and scheme.lower() in ("bearer", "basic") else "****"
        lowered = name.decode("latin-1").lower()
        piece = msgspec.json.encode({lowered: text})
        if self.redact is not None:
            piece = self.redact(piece.decode()).encode()
        return lowered.encode(), piece[1:-1]


MAX_HEADER_PIECES = 4096
_UNREDACTED = HeaderPieces()


def _text(data: bytes) -> str:
    return data.decode(errors="replace")


def joinable(patterns: Iterable[str]) -> bool:
    """Whether `redact` rules find in joined texts what they find in each text alone: not if
    one anchors at a text's start or end (`^`, `$`, `\\A`, `\\Z`) or looks behind."""
    return not any(_EDGES.search(p) for p in patterns)


_EDGES = re.compile(r"\^|\$|\\A|\\Z|\(\?<[=!]")


def _redact_together(redact: Redact, parts: Sequence[str]) -> list[str]:
    """Redact JSON texts in one pass: the fixed cost of a pass is most of what short texts cost.

    The parts join on a NUL, which JSON (compact or pretty-printed, as OpenAI's replies are)
    never holds raw. A rule whose match spans a NUL replaces it with the rest of the match,
    so the split comes out short and the parts are redacted one by one instead: a joined
    pass can only ever mask more than separate passes, never less.
    """
    if any(SEPARATOR in part for part in parts):
        return [redact(part) for part in parts]
    split = redact(SEPARATOR.join(parts)).split(SEPARATOR)
    return split if len(split) == len(parts) else [redact(part) for part in parts]


def _redact_bodies(redact: Redact, word_starts: WordStarts, parts: Sequence[bytes]) -> list[str]:
    """Redact texts by searching their ASCII ones as bytes at once: `redact` (the masker) sees
    only those holding one of its words, and the rest are decoded as they are.

    The ASCII parts are joined on NULs and lowered together; no word or secret holds a NUL,
    so each word found lies inside one part, the one whose start precedes it (`bisect`). A
    part redacted alone is the reference, so this is exact, never more or less than that.
    Other parts (non-ASCII, a few) are redacted one by one.
    """
    joined = b"\x00".join(parts)
    if joined.isascii():
        ascii_at: Sequence[int] = range(len(parts))
        lowered = joined.lower()
    else:
        ascii_at = [i for i, part in enumerate(parts) if part.isascii()]
        lowered = b"\x00".join([parts[i] for i in ascii_at]).lower()
    found = word_starts(lowered)
    if not found and len(ascii_at) == len(parts):
        return [part.decode("ascii") for part in parts]
    starts = list(itertools.accumulate((len(parts[i]) + 1 for i in ascii_at), initial=0))
    flagged = {ascii_at[bisect.bisect_right(starts, at) - 1] for at in found}
    plain = set(ascii_at)
    return [
        part.decode("ascii") if i in plain and i not in flagged else redact(_text(part)) for i, part in enumerate(parts)
    ]
