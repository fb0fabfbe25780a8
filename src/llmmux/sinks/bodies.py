"""Prompts and replies of the models `logging.bodies` names, stored for the console's
request pages (`ledger.bodies.BodyLog`: redacted, bounded, written in its own task)."""

from __future__ import annotations

import fnmatch

from ..config.model import Config
from ..events import RequestRecord
from ..ledger.bodies import BodyLog
from . import Remove, Sink, Wiring


class BodySink(Sink):
    name = "bodies"

    def __init__(self, bodies: BodyLog, patterns: list[str]) -> None:
        self.bodies = bodies
        self._patterns = patterns
        self._models: dict[str, bool] = {}  # model -> whether a pattern names it, asked once per name

    def attach(self, wiring: Wiring) -> list[Remove]:
        return [wiring.batches.subscribe(self.add)]

    def reconfigure(self, config: Config) -> None:
        self._patterns, self._models = list(config.logging.bodies), {}

    def wants(self, model: str) -> bool:
        found = self._models.get(model)
        if found is None:
            found = self._models[model] = any(fnmatch.fnmatchcase(model, p) for p in self._patterns)
        return found

    def add(self, batch: list[RequestRecord]) -> None:
        for record in batch:
            if self.wants(record.public_model):
                self.bodies.add(record)

    async def start(self) -> None:
        await self.bodies.start()

    async def aclose(self) -> None:
        await self.bodies.aclose()


def build(wiring: Wiring) -> BodySink | None:
    config = wiring.router.config.logging
    if wiring.store is None or not config.body_store.enabled or not config.bodies:
        return None
    return BodySink(BodyLog(wiring.store, config.body_store, wiring.masker), list(config.bodies))
