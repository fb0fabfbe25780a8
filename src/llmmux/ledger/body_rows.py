"""Body-store rows from what a finished request left behind: pure functions, no I/O.

`body_item` runs on the event loop and only takes what is in hand (the client's request
bytes, an OpenAI-format upstream's reply bytes, a stream's text), cut to the size limit plus
a margin. `item_rows` redacts and cuts them into rows, on the body log's own thread.
"""

from __future__ import annotations

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


def item_rows(items: Sequence[Item], redact: Redact, limit: int, *, together: bool = True) -> list[Row]:
    """The rows of `items`, redacted `REDACT_TOGETHER` bodies at a time (see `_redact_together`),
    or each text alone when not `together` (rules that see where a text begins or ends)."""
    rows: list[Row] = []
    for start in range(0, len(items), REDACT_TOGETHER):
        chunk = items[start : start + REDACT_TOGETHER]
        parts = [part for item in chunk for part in _parts(item)]
        texts = _redact_together(redact, parts) if together else [redact(part) for part in parts]
        for i, item in enumerate(chunk):
            rows.append(_row(item[0], item[1], texts[3 * i], texts[3 * i + 1], texts[3 * i + 2], limit))
    return rows


def _parts(item: Item) -> tuple[str, str, str]:
    headers = msgspec.json.encode(masked_headers(item[2])).decode()
    return headers, _text(item[3]), _text(item[4])


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
    shown: dict[str, str] = {}
    for name, value in headers or ():
        text = value.decode("latin-1")
        if name.lower() in SECRET_HEADERS:
            scheme, space, _ = text.partition(" ")
            text = f"{scheme} ****" if space and scheme.lower() in ("bearer", "basic") else "****"
        shown[name.decode("latin-1").lower()] = text
    return shown


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
