"""The ledger: one row per finished request, written to SQLite or PostgreSQL in batches.

Rows are built off the request path (in `Batches`) and written by the `LedgerWriter`'s task;
what it wrote is reported to `Wiring.on_written` (the key spend settles it), what it had to
drop is counted in metrics.
"""

from __future__ import annotations

import logging

from ..config.model import Config, LedgerConfig
from ..events import RequestRecord
from ..ledger import LedgerWriter, Row, Store
from ..ledger.rows import attempt_counts, to_row
from ..ledger.schema import REQUEST_COLUMNS
from ..masking import Masker
from ..metrics import GatewayMetrics
from . import Remove, Sink, Wiring

log = logging.getLogger("llmmux.ledger")

_ATTEMPT_LOG = REQUEST_COLUMNS.index("attempt_log")


class LedgerSink(Sink):
    name = "ledger"

    def __init__(self, wiring: Wiring, store: Store, settings: LedgerConfig) -> None:
        self.store = store
        self.masker: Masker = wiring.masker
        self._metrics: GatewayMetrics = wiring.metrics
        self._written = wiring.on_written
        self.writer = LedgerWriter(
            store,
            flush_interval_s=settings.flush_interval_s,
            batch_size=settings.batch_size,
            max_pending=settings.max_pending,
            on_written=self._on_written,
            on_dropped=self._dropped,
            after_flush=wiring.after_flush,
            lock=wiring.db_turn,
        )

    def attach(self, wiring: Wiring) -> list[Remove]:
        return [wiring.batches.subscribe(self.add)]

    def reconfigure(self, config: Config) -> None:
        # The store stays (a reload does not move the ledger); its batching follows the new config.
        settings = config.ledger
        writer = self.writer
        writer.flush_interval_s, writer.batch_size, writer.max_pending = (
            settings.flush_interval_s,
            settings.batch_size,
            settings.max_pending,
        )

    def add(self, batch: list[RequestRecord]) -> None:
        add = self.writer.add
        for record in batch:
            add(self.row(record))

    def row(self, record: RequestRecord) -> Row:
        row = to_row(record, attempt_counts(record))
        attempts = row[_ATTEMPT_LOG]
        if attempts is not None:  # failed attempts carry upstream messages: mask anything secret-shaped
            row = (*row[:_ATTEMPT_LOG], self.masker.scrub(attempts), *row[_ATTEMPT_LOG + 1 :])
        return row

    def _on_written(self, rows: list[Row]) -> None:
        for written in self._written:
            written(rows)

    def _dropped(self, count: int) -> None:
        self._metrics.ledger_dropped.inc((), count)

    async def start(self) -> None:
        await self.writer.start()

    async def aclose(self) -> None:
        await self.writer.aclose()


def build(wiring: Wiring) -> LedgerSink | None:
    if wiring.store is None:
        return None
    return LedgerSink(wiring, wiring.store, wiring.router.config.ledger)
