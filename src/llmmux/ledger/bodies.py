"""Prompts and replies kept beside the ledger, for the console's search and request view.

Only the public models `logging.bodies` names are kept. A finished request costs the hot
path nothing here: the accounting's batch loop hands records to `BodyLog.add`, which
encodes, redacts and cuts them, and a background task writes them in batches (on the
ledger's writer connection, so SQLite's reader stays free for the console's queries) and
enforces retention by age and total size every `RETENTION_INTERVAL_S`.

    bodies = BodyLog(store, config.logging.body_store, masker)
    await bodies.start(); bodies.add(record); await bodies.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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
SECRET_HEADERS = frozenset({b"authorization", b"x-api-key", b"api-key", b"cookie", b"proxy-authorization"})
_COLUMNS = ("request_id", "ts", "headers", "request", "response", "bytes")
_INSERT = (
    f"INSERT INTO request_bodies ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_SQLITE_INDEX = (
    "INSERT INTO request_bodies_fts (rowid, request, response) "
    "SELECT id, request, response FROM request_bodies WHERE request_id = ?"
)
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
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore") + f"\n[... cut: {len(data)} bytes, {limit} kept]"


def masked_headers(headers: list[tuple[bytes, bytes]] | None) -> dict[str, str]:
    """The client's headers with every credential masked (its last 4 characters show, to tell keys apart)."""
    shown: dict[str, str] = {}
    for name, value in headers or ():
        text = value.decode("latin-1")
        if name.lower() in SECRET_HEADERS:
            text = "****" + text[-4:] if len(text) > 16 else "****"
        shown[name.decode("latin-1").lower()] = text
    return shown


def body_row(record: RequestRecord, redact: Redactor, limit: int) -> Row:
    request = response = None
    if record.request is not None:
        request = cut(
            redact(encode_chat_request(record.request, record.public_model, stream=record.stream).decode()), limit
        )
    if record.response is not None:
        response = cut(redact(encode_chat_response(record.response, record.public_model).decode()), limit)
    elif record.output is not None:
        streamed = msgspec.json.encode({"streamed": True, "content": "".join(record.output)}).decode()
        response = cut(redact(streamed), limit)
    headers = redact(msgspec.json.encode(masked_headers(record.context.headers)).decode())
    size = len(headers) + len(request or "") + len(response or "")
    return (record.context.request_id, record.context.started, headers, request, response, size)


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
        self._pending: list[Row] = []
        self._task: asyncio.Task[None] | None = None
        self._last_retention = 0.0

    def add(self, record: RequestRecord) -> None:
        if len(self._pending) >= MAX_PENDING:
            self.dropped += 1  # the database is behind: bodies are the first thing to give up
            return
        self._pending.append(body_row(record, self.redact, self.config.max_bytes))

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
                log.error("body log write to %s failed (%d buffered): %s", self.store.location, len(self._pending), exc)

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        steps: list[tuple[str, list[Row]]] = [(_INSERT, batch)]
        if self.store.dialect == "sqlite":
            steps.append((_SQLITE_INDEX, [(row[0],) for row in batch]))
        try:
            await self.store.transaction(steps)
        except BaseException:
            self._pending[:0] = batch[: MAX_PENDING - len(self._pending)]
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
            log.error("body log: %d bodies could not be written: %s", len(self._pending), exc)
