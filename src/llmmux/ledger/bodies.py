"""Prompts and replies kept beside the ledger, for the console's search and request view.

Only the public models `logging.bodies` names are kept. A finished request costs the hot
path nothing here: the accounting's batch loop hands records to `BodyLog.add`, which only
queues them (bounded by count and bytes: past either, a body is dropped and counted, never
waited for). A background task takes the queue every `FLUSH_INTERVAL_S`, turns it into rows
on its own thread (the bytes as they crossed the wire, redacted and cut: the CPU-heavy part,
so the event loop is never held up for a whole batch), writes them in one transaction with
their full-text index (on the ledger's writer connection, so SQLite's reader stays free for
the console's queries) and enforces retention by age and total size every
`RETENTION_INTERVAL_S`.

    bodies = BodyLog(store, config.logging.body_store, masker)
    await bodies.start(); bodies.add(record); await bodies.aclose()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import msgspec

from ..config.model import BodyStoreConfig
from ..events import RequestRecord
from ..logs import Redactor
from ..wire.openai import encode_chat_request, encode_chat_response
from .store import Row, Store

log = logging.getLogger("llmmux.ledger")

FLUSH_INTERVAL_S = 1.0
RETENTION_INTERVAL_S = 60.0
MAX_PENDING = 10_000
MAX_PENDING_BYTES = 64 * 1024**2  # bodies queued but not yet written; a stalled database holds no more
ROWS_THREAD = "llmmux-bodies"
SEPARATOR = "\x00"  # JSON never holds a raw NUL: the parts of a row are redacted as one text
CUT_MARGIN = 512
SECRET_HEADERS = frozenset({b"authorization", b"x-api-key", b"api-key", b"cookie", b"proxy-authorization"})
_COLUMNS = ("request_id", "ts", "headers", "request", "response", "bytes")
_INSERT = (
    f"INSERT INTO request_bodies ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_SQLITE_INDEX = (
    "INSERT INTO request_bodies_fts (rowid, request, response) "
    "SELECT id, request, response FROM request_bodies WHERE request_id IN ({marks})"
)
SQLITE_MAX_VARIABLES = 32_766
# FTS5 with external content forgets a row only when told its old text: hence the SELECT.
_SQLITE_FORGET = (
    "INSERT INTO request_bodies_fts (request_bodies_fts, rowid, request, response) "
    "SELECT 'delete', id, request, response FROM request_bodies WHERE id < ?"
)
_DELETE = "DELETE FROM request_bodies WHERE id < ?"
_OLDEST_KEPT_BY_AGE = "SELECT MIN(id) FROM request_bodies WHERE ts >= ?"
# The newest rows whose running total fits the size limit are kept; everything older goes.
_OLDEST_KEPT_BY_SIZE = (
    "SELECT MIN(id) FROM (SELECT id, SUM(bytes) OVER (ORDER BY id DESC) AS running FROM request_bodies) kept "
    "WHERE running <= ?"
)
_SELECT_ONE = "SELECT headers, request, response, bytes FROM request_bodies WHERE request_id = ?"


def cut(text: str, limit: int) -> str:
    """`text` within `limit` UTF-8 bytes, saying where it was cut."""
    if len(text) * 4 <= limit:  # no character is over 4 bytes in UTF-8: surely within
        return text
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore") + f"\n[... cut at {limit} bytes]"


def masked_headers(headers: list[tuple[bytes, bytes]] | None) -> dict[str, str]:
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


def body_row(record: RequestRecord, redact: Redactor, limit: int) -> Row:
    """The bodies as they crossed the wire where llmmux has those bytes (the client's request, an
    OpenAI-format upstream's reply), else re-encoded in OpenAI's format; redacted and cut."""
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
    headers = msgspec.json.encode(masked_headers(context.headers)).decode()
    texts = _redact_together(redact, headers, _text(request), _text(response))
    headers, request_text, response_text = texts[0], cut(texts[1], limit), cut(texts[2], limit)
    size = len(headers) + len(request_text) + len(response_text)
    return (context.request_id, context.started, headers, request_text or None, response_text or None, size)


def _name_os_thread() -> None:
    """The thread's name where `top -H` and the benchmark see it (Python names only its own object)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(ROWS_THREAD)


def _text(data: bytes) -> str:
    return data.decode(errors="replace")


def _redact_together(redact: Redactor, *parts: str) -> list[str]:
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


def _sqlite_steps(batch: list[Row]) -> list[tuple[str, list[Row]]]:
    """Each chunk as one multi-row INSERT and one indexing statement, not a statement per row.

    sqlite3 hands the GIL back at every statement step; a step per row would stall the
    event loop thread once per row (see SQLiteStore.insert_requests).
    """
    per_statement = SQLITE_MAX_VARIABLES // len(_COLUMNS)
    steps: list[tuple[str, list[Row]]] = []
    for start in range(0, len(batch), per_statement):
        chunk = batch[start : start + per_statement]
        values = ", ".join(["(" + ", ".join("?" * len(_COLUMNS)) + ")"] * len(chunk))
        insert = (
            f"INSERT INTO request_bodies ({', '.join(_COLUMNS)}) VALUES {values} ON CONFLICT (request_id) DO NOTHING"
        )
        steps.append((insert, [tuple(v for row in chunk for v in row)]))
        steps.append((_SQLITE_INDEX.format(marks=", ".join("?" * len(chunk))), [tuple(row[0] for row in chunk)]))
    return steps


class BodyLog:
    """Buffers body rows, writes them in batches and enforces retention, in one background task."""

    def __init__(
        self,
        store: Store,
        config: BodyStoreConfig,
        scrub: Any,
        *,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        retention_interval_s: float = RETENTION_INTERVAL_S,
        clock: Any = time.time,
    ) -> None:
        self.store = store
        self.config = config
        self.redact = Redactor(scrub, config.redact)
        self.flush_interval_s = flush_interval_s
        self.retention_interval_s = retention_interval_s
        self.clock = clock
        self.dropped = 0
        self._pending: list[RequestRecord] = []
        self._pending_bytes = 0
        self._unwritten: list[Row] = []  # rows a failed write gives back, tried again first
        self._task: asyncio.Task[None] | None = None
        self._last_retention = 0.0
        self._rows_thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=ROWS_THREAD, initializer=_name_os_thread
        )

    def add(self, record: RequestRecord) -> None:
        """Queue a finished request's bodies: references to bytes already in hand, no copy, no encoding."""
        context, response = record.context, record.response
        size = len(context.body or b"") + (len(response.raw or b"") if response is not None else 0)
        if len(self._pending) >= MAX_PENDING or self._pending_bytes + size > MAX_PENDING_BYTES:
            self.dropped += 1  # the database is behind: bodies are the first thing to give up
            return
        self._pending.append(record)
        self._pending_bytes += size

    def _rows(self, records: list[RequestRecord]) -> list[Row]:
        redact, limit = self.redact, self.config.max_bytes
        return [body_row(record, redact, limit) for record in records]

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="llmmux-body-log")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
                if self.clock() - self._last_retention >= self.retention_interval_s:
                    await self.enforce_retention()
            except Exception as exc:
                buffered = len(self._pending) + len(self._unwritten)
                log.error("body log write to %s failed (%d buffered): %s", self.store.location, buffered, exc)

    async def flush(self) -> None:
        records, self._pending, self._pending_bytes = self._pending, [], 0
        batch, self._unwritten = self._unwritten, []
        if records:
            loop = asyncio.get_running_loop()
            batch += await loop.run_in_executor(self._rows_thread, self._rows, records)
        if not batch:
            return
        steps = _sqlite_steps(batch) if self.store.dialect == "sqlite" else [(_INSERT, batch)]
        try:
            await self.store.transaction(steps)
        except BaseException:
            self._unwritten = batch[:MAX_PENDING]
            self.dropped += len(batch) - len(self._unwritten)
            raise

    async def enforce_retention(self) -> int:
        """Delete bodies older than `max_age_s`, then the oldest until the rest fit `max_total_bytes`."""
        self._last_retention = self.clock()
        cutoffs = [
            (await self.store.fetch(_OLDEST_KEPT_BY_AGE, (self.clock() - self.config.max_age_s,)))[0][0],
            (await self.store.fetch(_OLDEST_KEPT_BY_SIZE, (self.config.max_total_bytes,)))[0][0],
        ]
        if cutoffs[0] is None or cutoffs[1] is None:  # nothing young enough, or each body alone too big
            kept_from = await self._next_id()
        else:
            kept_from = max(int(cutoffs[0]), int(cutoffs[1]))
        steps: list[tuple[str, list[Row]]] = [(_DELETE, [(kept_from,)])]
        if self.store.dialect == "sqlite":
            steps.insert(0, (_SQLITE_FORGET, [(kept_from,)]))
        before = await self.count()
        await self.store.transaction(steps)
        return before - await self.count()

    async def _next_id(self) -> int:
        rows = await self.store.fetch("SELECT MAX(id) FROM request_bodies")
        return int(rows[0][0] or 0) + 1

    async def count(self) -> int:
        return int((await self.store.fetch("SELECT COUNT(*) FROM request_bodies"))[0][0])

    async def get(self, request_id: str) -> dict[str, Any] | None:
        rows = await self.store.fetch(_SELECT_ONE, (request_id,))
        if not rows:
            return None
        headers, request, response, size = rows[0]
        return {
            "headers": msgspec.json.decode(headers) if headers else {},
            "request": request,
            "response": response,
            "bytes": int(size),
        }

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.flush()
        except Exception as exc:
            log.error("body log: %d bodies could not be written: %s", len(self._unwritten), exc)
        self._rows_thread.shutdown(wait=False)
