"""bench/ledger_overhead.py's in-process app measures a healthy gateway, not one waiting on a down provider."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_in_process_provider_passes_its_health_probe(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import ledger_overhead
    finally:
        sys.path.remove(str(BENCH))

    async def probed() -> object:
        app = ledger_overhead.build(tmp_path / "ledger.db", url)
        await ledger_overhead.lifespan(app, "startup")
        deadline = time.monotonic() + 10
        while (record := app.router.health.record("fast")).last_probe is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await ledger_overhead.lifespan(app, "shutdown")
        return record

    with ledger_overhead.live_upstream() as url:
        record = asyncio.run(probed())
    assert record.last_probe is not None and record.last_probe.ok, record
    assert record.state == "active", record
