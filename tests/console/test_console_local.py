"""The Local models page in a real browser, in front of `llmmux serve` with a tiny in-process GGUF model."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from local.fixtures import tiny_gguf  # noqa: F401  (fixture)
from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy

from .conftest import MASTER, ConsoleServer, log_in


@pytest.fixture(scope="module")
def local_served(tmp_path_factory: pytest.TempPathFactory, tiny_gguf: Path) -> Iterator[ConsoleServer]:  # noqa: F811
    folder = tmp_path_factory.mktemp("console-local")
    config = folder / "llmmux.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"master_key": MASTER},
                "ledger": {"path": str(folder / "llmmux.db")},
                "health_checks": {"enabled": False},
                "providers": {
                    "local": {
                        "type": "llama_cpp",
                        "n_threads": 1,
                        "keep_alive": "10m",
                        "models": [{"name": "tiny", "path": str(tiny_gguf)}],
                    }
                },
            }
        )
    )
    port = free_port()
    process = start_serve(config, port)
    try:
        wait_healthy(port, process, limit=60)
        shots = folder / "screenshots"
        shots.mkdir()
        yield ConsoleServer(f"http://127.0.0.1:{port}", None, None, config, shots)  # type: ignore[arg-type]
    finally:
        stop_serve(process)


def test_local_models_load_and_unload(browser: Any, local_served: ConsoleServer) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        log_in(page, local_served)
        page.click("nav >> text=Local models")
        row = page.locator("tr[data-model=tiny]")
        row.locator(".badge", has_text="unloaded").wait_for()
        row.get_by_role("button", name="Load", exact=True).click()
        row.locator(".badge", has_text="active").wait_for()  # the page shows a ready model as active
        assert re.fullmatch(r"\d+(\.\d)? (KB|MB|GB)", row.locator("td").nth(4).inner_text())  # its memory
        listing = httpx.get(
            f"{local_served.root}/admin/models", headers={"authorization": f"Bearer {MASTER}"}, timeout=10
        ).json()
        assert [(m["model"], m["state"]) for m in listing["data"]] == [("tiny", "ready")]
        row.get_by_role("button", name="Unload", exact=True).click()
        row.locator(".badge", has_text="unloaded").wait_for()
    finally:
        page.screenshot(path=str(local_served.shots / "test_local_models_load_and_unload.png"), full_page=True)
        context.close()
