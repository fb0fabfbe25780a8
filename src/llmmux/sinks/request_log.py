"""A JSON (or text) line per finished request, through `logs.RequestLog`, which formats in
batches and writes from its own thread. For the models `logging.bodies` names, a stream's
text is collected from its start, so the line can carry it."""

from __future__ import annotations

from ..config.model import Config
from ..events import RequestRecord
from ..logs import RequestLog
from . import Remove, Sink, Wiring


class RequestLogSink(Sink):
    name = "request_log"

    def __init__(self, log: RequestLog) -> None:
        self.log = log

    def attach(self, wiring: Wiring) -> list[Remove]:
        return [wiring.events.subscribe(self.started, start=True), wiring.batches.subscribe(self.write)]

    def reconfigure(self, config: Config) -> None:
        self.log.configure(config.logging)

    def started(self, record: RequestRecord) -> None:
        if self.log.wants_body(record.public_model):
            record.output = []  # the pipeline collects a stream's text into it

    def write(self, batch: list[RequestRecord]) -> None:
        log = self.log.log
        for record in batch:
            log(record)

    async def start(self) -> None:
        await self.log.start()

    async def aclose(self) -> None:
        await self.log.aclose()


def build(wiring: Wiring) -> RequestLogSink:
    return RequestLogSink(RequestLog(wiring.router.config.logging, wiring.masker))
