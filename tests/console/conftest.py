"""A real `llmmux serve` in front of two fake upstreams, and a headless Debian chromium to drive its console."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI

MASTER = "sk-console-master-0123456789abcdef"
ALPHA_KEY = "sk-alpha-provider-secret-987654321"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class ConsoleServer:
    root: str
    alpha: FakeOpenAI
    beta: FakeOpenAI
    config: Path
    shots: Path

    @property
    def ui(self) -> str:
        return f"{self.root}/ui"

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {MASTER}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.root}{path}", headers=headers, timeout=10, **kwargs)


def console_config(alpha: FakeOpenAI, beta: FakeOpenAI, ledger: Path, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(ledger), "flush_interval": 0.1},
        "logging": {"bodies": True, "body_store": {"redact": [r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"]}},
        "health_checks": {"interval": 3600},
        "providers": {
            "alpha": {
                "type": "openai_compatible",
                "base_url": alpha.url,
                "api_key": ALPHA_KEY,
                "models": [{"name": "m1", "pricing": {"input": 1, "output": 2}}],
            },
            "beta": {"type": "openai_compatible", "base_url": beta.url, "models": ["m1"]},
        },
        "routing": {
            "exact_matches": {
                "chat": {"provider": "alpha", "model": "m1", "fallback": ["beta/m1"]},
                "beta-only": {"provider": "beta", "model": "m1"},
            }
        },
        **extra,
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    folder = tmp_path_factory.mktemp("console")
    with FakeOpenAI(echo_prefix="alpha says: ") as alpha, FakeOpenAI(echo_prefix="beta says: ") as beta:
        config = folder / "llmmux.yaml"
        config.write_text(yaml.safe_dump(console_config(alpha, beta, folder / "llmmux.db")))
        port = free_port()
        process = start_serve(config, port)
        try:
            wait_healthy(port, process)
            shots = folder / "screenshots"
            shots.mkdir()
            yield ConsoleServer(f"http://127.0.0.1:{port}", alpha, beta, config, shots)
        finally:
            stop_serve(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"the console tests drive Debian's chromium at {CHROMIUM}: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, served: ConsoleServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context per test; whatever it shows last is saved as a screenshot."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    try:
        yield opened
    finally:
        shot = served.shots / f"{request.node.name}.png"
        opened.screenshot(path=str(shot), full_page=True)
        docs = DOCS_IMG
        chosen = served.shots / f"{request.node.name}.readme.png"  # a test may pick an earlier moment
        if UPDATE_DOCS and docs.is_dir() and request.node.get_closest_marker("readme_shot"):
            shutil.copy(
                chosen if chosen.exists() else shot, docs / f"console-{request.node.name.removeprefix('test_')}.png"
            )
        context.close()


# Screenshots are always saved beside the test's temp files; with LLMMUX_README_SHOTS=1 the
# README's are refreshed too (a plain test run leaves the tree as it was).
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
UPDATE_DOCS = os.environ.get("LLMMUX_README_SHOTS") == "1"


def readme_shot(page: Any, served: ConsoleServer, name: str) -> None:
    """A screenshot of this moment, kept with the test's others and copied to docs/img/ for the README."""
    shot = served.shots / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    if UPDATE_DOCS and DOCS_IMG.is_dir():
        shutil.copy(shot, DOCS_IMG / f"console-{name}.png")


def log_in(page: Any, served: ConsoleServer, key: str = MASTER) -> None:
    page.goto(f"{served.ui}/")
    page.fill("input[name=key]", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.ui}/")
