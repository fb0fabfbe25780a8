"""Ledger fixtures: the same tests run on a SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from llmmux.ledger import PostgresStore, SQLiteStore, Store
from llmmux.ledger.schema import REQUEST_COLUMNS

from .postgres import TempPostgres

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def postgres() -> Iterator[TempPostgres]:
    """One throwaway cluster for the session; each test gets its own database in it."""
    with TempPostgres() as server:
        yield server


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh, empty ledger lives: a SQLite file path or a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger" / "llmmux.db")
    server: TempPostgres = request.getfixturevalue("postgres")
    return server.create_database("t_" + uuid.uuid4().hex[:12])


def make_store(url: str) -> Store:
    return PostgresStore(url) if url.startswith("postgresql://") else SQLiteStore(url)


@pytest.fixture
async def store(ledger_url: str) -> AsyncIterator[Store]:
    opened = make_store(ledger_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def ledger_config(url: str, **extra: object) -> dict[str, object]:
    """The `ledger:` section that points at `url`."""
    key = "database_url" if url.startswith("postgresql://") else "path"
    return {key: url, **extra}


def ledger_row(**values: Any) -> tuple[Any, ...]:
    """A ledger row with defaults; pass columns to change."""
    base: dict[str, Any] = {
        "request_id": "r",
        "ts": 1_790_000_000.0,
        "key_id": None,
        "client_api": "openai",
        "public_model": "chat",
        "provider": "main",
        "model": "m1",
        "stream": False,
        "attempts": 1,
        "fallbacks": 0,
        "retries": 0,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "total_tokens": 15,
        "estimated": False,
        "cost_usd": 0.001,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "upstream_ms": 90.0,
        "status": 200,
        "error_kind": None,
        "cache": None,
        "saved_usd": 0.0,
        "cache_source": None,
        "attempt_log": None,
        "parent_id": None,
        "tags": None,
        "end_user": None,
        "team_id": None,
    }
    base.update(values)
    return tuple(base[c] for c in REQUEST_COLUMNS)
