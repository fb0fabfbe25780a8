"""The ledger: one row per request, and the virtual keys, in SQLite or PostgreSQL.

store = open_store(config)          # from the `ledger:` section; None when disabled
await store.open()                  # creates the file or tables, applies migrations
"""

from __future__ import annotations

from pathlib import Path

from ..config.model import DEFAULT_LEDGER_FILE, DISCOVERED_SOURCE, Config
from ..config.paths import data_dir
from .postgres import PostgresStore
from .sqlite import SQLiteStore
from .store import REPORT_GROUPS, Row, Store
from .writer import LedgerWriter

__all__ = ["REPORT_GROUPS", "LedgerWriter", "PostgresStore", "Row", "SQLiteStore", "Store", "ledger_path", "open_store"]


def ledger_path(config: Config) -> Path | None:
    """The SQLite file: `ledger.path` (relative to the config's folder), else llmmux.db beside the config.

    With no config at all (`llmmux serve` on what it discovered), the folder is the user's
    data directory (config/paths.py), never the current one. A config built from a dict
    (the library) has no folder, so it has a ledger only if `ledger.path` or
    `database_url` says where.
    """
    folder = _config_folder(config.source)
    if config.ledger.path:
        path = Path(config.ledger.path).expanduser()
        return path if path.is_absolute() or folder is None else folder / path
    return folder / DEFAULT_LEDGER_FILE if folder is not None else None


def _config_folder(source: str) -> Path | None:
    if source == DISCOVERED_SOURCE:
        return data_dir()
    if source == "<dict>":
        return None
    path = Path(source)
    return path if path.is_dir() else path.parent


def open_store(config: Config) -> Store | None:
    """The configured store (not yet opened), or None when the ledger is off or has no location."""
    if not config.ledger.enabled:
        return None
    if config.ledger.database_url:
        return PostgresStore(str(config.ledger.database_url))
    path = ledger_path(config)
    return SQLiteStore(path) if path is not None else None
