"""A configuration reload that takes effect leaves one audit row naming what it changed; a rejected one none."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from llmmux import audit
from llmmux.accounting import Accounting
from llmmux.config import load_config
from llmmux.reload import ConfigWatcher
from llmmux.router import Router

CONFIG = """
ledger: {{path: "{db}"}}
providers:
  up: {{type: openai_compatible, base_url: "http://127.0.0.1:9/v1", api_key: sk-provider-secret-123456, models: [m]}}
{extra}
"""


async def test_each_reload_is_audited_once_without_secrets(tmp_path: Path) -> None:
    path, db = tmp_path / "llmmux.yaml", tmp_path / "l.db"
    path.write_text(CONFIG.format(db=db, extra=""))
    config, _ = load_config(path)
    router = Router(config)
    accounting = Accounting.from_config(router)
    await accounting.start()
    watcher = ConfigWatcher(router, interval_s=0.02)
    watcher.on_reloaded = accounting.audit_reload
    watcher.start(sighup=False)
    try:
        more = '  more: {type: openai_compatible, base_url: "http://127.0.0.1:9/v1", models: [m2]}'
        path.write_text(CONFIG.format(db=db, extra="").rstrip() + "\n" + more + "\n")
        await _until(lambda: watcher.reloads == 1)
        path.write_text("providers:\n  up: {type: openai_compatible, base_url: nope}\n")  # rejected
        watcher.trigger()
        await asyncio.sleep(0.2)
        assert accounting.store is not None
        rows = await audit.page(accounting.store)
    finally:
        await watcher.stop()
        await accounting.aclose()
        await router.aclose()
    assert [(r["action"], r["actor"]) for r in rows] == [("config.reload", "config (file changed)")]
    assert rows[0]["changes"] == {"providers": [["up"], ["more", "up"]]}
    assert "sk-provider-secret" not in str(rows)


async def _until(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
