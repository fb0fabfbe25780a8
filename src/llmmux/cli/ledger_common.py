"""What the ledger commands (`keys`, `usage`) share: finding and opening the ledger."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click

from ..ledger import PostgresStore, SQLiteStore, Store, open_store
from .common import config_or_exit, find_config

T = TypeVar("T")

db_option = click.option(
    "--db",
    "db",
    default=None,
    metavar="PATH|URL",
    help="The ledger to use: a SQLite file or a postgresql:// URL (default: the config's ledger).",
)


def store_for(config_path: Path | None, db: str | None) -> Store:
    if db:
        return PostgresStore(db) if db.startswith(("postgresql://", "postgres://")) else SQLiteStore(Path(db))
    config = config_or_exit(find_config(config_path))
    store = open_store(config)
    if store is None:
        raise click.UsageError("the ledger is disabled in this config (ledger.enabled: false); pass --db")
    return store


def run_with_store(store: Store, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run `work`, close it; database errors become one clear line and exit 1."""

    async def main() -> T:
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except click.ClickException:
        raise
    except Exception as exc:  # refused connection, locked or corrupt file, newer schema: say which ledger
        click.echo(f"llmmux: cannot use the ledger at {store.location}: {exc}", err=True)
        sys.exit(1)
