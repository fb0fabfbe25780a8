"""The ledger's tables and their forward-only migrations.

Migrations only add: tables, columns with defaults, indexes. None drops, renames or
rewrites data (a test checks the SQL), so any llmmux version opens an older ledger
and keeps every row. Each migration runs once, recorded in `llmmux_schema`; a ledger
written by a newer llmmux than this one is refused instead of being guessed at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .rollups import POSTGRES, SQLITE, backfill_statements

# The request columns in the order rows are built (ledger.rows) and inserted.
REQUEST_COLUMNS = (
    "request_id",
    "ts",
    "key_id",
    "client_api",
    "public_model",
    "provider",
    "model",
    "stream",
    "attempts",
    "fallbacks",
    "retries",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "estimated",
    "cost_usd",
    "latency_ms",
    "ttft_ms",
    "upstream_ms",
    "status",
    "error_kind",
    "cache",
    "saved_usd",
    "cache_source",
    "attempt_log",
    "parent_id",
    "tags",
    "end_user",
    "team_id",
)

KEY_COLUMNS = (
    "id",
    "name",
    "hash",
    "hint",
    "created_at",
    "expires_at",
    "revoked_at",
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "models",
    "scopes",
    "tags",
    "end_user_limits",
    "team_id",
    "block_free",
    "alert_at",
)

TEAM_COLUMNS = (
    "id",
    "name",
    "created_at",
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "models",
    "tags",
    "end_user_limits",
    "block_free",
    "key_defaults",
    "alert_at",
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    def statements(self, dialect: str) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgres


def _requests_table(id_column: str, real: str, boolean: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS requests (
    id {id_column},
    request_id TEXT NOT NULL UNIQUE,
    ts {real} NOT NULL,
    key_id TEXT,
    client_api TEXT NOT NULL,
    public_model TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    stream {boolean} NOT NULL,
    attempts INTEGER NOT NULL,
    fallbacks INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    estimated {boolean} NOT NULL,
    cost_usd {real} NOT NULL,
    latency_ms {real} NOT NULL,
    ttft_ms {real},
    upstream_ms {real} NOT NULL,
    status INTEGER NOT NULL,
    error_kind TEXT,
    attempt_log TEXT
)"""


_INDEXES = (
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts)",
    # Partial: requests made without a virtual key never touch it.
    "CREATE INDEX IF NOT EXISTS requests_key_ts ON requests (key_id, ts) WHERE key_id IS NOT NULL",
)


def _keys_table(real: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_at {real} NOT NULL,
    expires_at {real},
    revoked_at {real},
    budget_usd {real},
    budget_period TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    models TEXT NOT NULL
)"""


def _rollup_tables(real: str, count: str, histogram: str, sqlite: bool) -> tuple[str, str]:
    clustered = " WITHOUT ROWID" if sqlite else ""  # SQLite: rows stored in key order, read by range
    dimensions = f"""grain INTEGER NOT NULL,
    start {real} NOT NULL,
    key_id TEXT NOT NULL,
    public_model TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,"""
    keys = "grain, start, key_id, public_model, provider, model"
    return (
        f"""CREATE TABLE IF NOT EXISTS usage_rollup (
    {dimensions}
    requests {count} NOT NULL,
    errors {count} NOT NULL,
    prompt_tokens {count} NOT NULL,
    completion_tokens {count} NOT NULL,
    cached_tokens {count} NOT NULL,
    cost_usd {real} NOT NULL,
    estimated {count} NOT NULL,
    PRIMARY KEY ({keys})
){clustered}""",
        f"""CREATE TABLE IF NOT EXISTS usage_latency (
    {dimensions}
    histogram {histogram} NOT NULL,
    PRIMARY KEY ({keys})
){clustered}""",
    )


def _bodies_table(id_column: str, real: str, search: str = "") -> str:
    return f"""CREATE TABLE IF NOT EXISTS request_bodies (
    id {id_column},
    request_id TEXT NOT NULL UNIQUE,
    ts {real} NOT NULL,
    headers TEXT,
    request TEXT,
    response TEXT,
    bytes INTEGER NOT NULL{search}
)"""


# Prompts and replies of the requests `logging.bodies` selects. SQLite indexes their words
# in an FTS5 table whose content is the bodies table (the store keeps the two in step, as
# migrations here never hold DELETE triggers); PostgreSQL in a generated tsvector column.
_PG_SEARCH = """,
    search tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', COALESCE(request, '') || ' ' || COALESCE(response, ''))
    ) STORED"""
# Which bodies the full-text index holds: the body log indexes them in id order, apart
# from their INSERT, and moves this mark in the same transaction.
SQLITE_BODIES_INDEXED_UP_TO = "SELECT up_to FROM request_bodies_indexed"
# Search asks for bodies holding every word (as PostgreSQL's plainto_tsquery does), never for
# words side by side, so the index keeps which bodies hold a word and not where (detail=none:
# half the CPU and a fifth less space than with positions), nor how many words each body
# has (columnsize=0: only ranking reads them, and search does not rank). Merging its
# segments 16 at a time instead of 4 takes a tenth off indexing (bench/README.md, body logging).
SQLITE_BODIES_FTS = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS request_bodies_fts USING fts5("
    "request, response, content='request_bodies', content_rowid='id', detail=none, columnsize=0)"
)
SQLITE_BODIES_FTS_MERGE = "INSERT INTO request_bodies_fts (request_bodies_fts, rank) VALUES ('automerge', 16)"
BODY_MIGRATION = Migration(
    5,
    "request and response bodies, searchable",
    sqlite=(
        _bodies_table("INTEGER PRIMARY KEY", "REAL"),
        "CREATE INDEX IF NOT EXISTS request_bodies_ts ON request_bodies (ts)",
        "CREATE VIRTUAL TABLE IF NOT EXISTS request_bodies_fts USING fts5("
        "request, response, content='request_bodies', content_rowid='id')",
    ),
    postgres=(
        _bodies_table("BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", _PG_SEARCH),
        "CREATE INDEX IF NOT EXISTS request_bodies_ts ON request_bodies (ts)",
        "CREATE INDEX IF NOT EXISTS request_bodies_search ON request_bodies USING GIN (search)",
    ),
)


def _teams_table(real: str, flag: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS teams (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at {real} NOT NULL,
    budget_usd {real},
    budget_period TEXT NOT NULL,
    rpm INTEGER,
    tpm INTEGER,
    models TEXT NOT NULL,
    tags TEXT NOT NULL,
    end_user_limits TEXT,
    block_free {flag},
    key_defaults TEXT NOT NULL
)"""


def _audit_table(id_column: str, real: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS audit_log (
    id {id_column},
    ts {real} NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    changes TEXT NOT NULL
)"""


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "request records and virtual keys",
        sqlite=(_requests_table("INTEGER PRIMARY KEY", "REAL", "INTEGER"), _keys_table("REAL"), *_INDEXES),
        postgres=(
            _requests_table("BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", "BOOLEAN"),
            _keys_table("DOUBLE PRECISION"),
            *_INDEXES,
        ),
    ),
    Migration(
        2,
        "the client request a fanned-out call belongs to",
        sqlite=("ALTER TABLE requests ADD COLUMN parent_id TEXT",),
        postgres=("ALTER TABLE requests ADD COLUMN IF NOT EXISTS parent_id TEXT",),
    ),
    Migration(
        3,
        "hourly and daily usage rollups, filled from the rows already there",
        sqlite=(*_rollup_tables("REAL", "INTEGER", SQLITE.histogram_type, sqlite=True), *backfill_statements(SQLITE)),
        postgres=(
            *_rollup_tables("DOUBLE PRECISION", "BIGINT", POSTGRES.histogram_type, sqlite=False),
            *backfill_statements(POSTGRES),
        ),
    ),
    Migration(
        4,
        "key scopes (admin, metrics)",
        sqlite=("ALTER TABLE keys ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]'",),
        postgres=("ALTER TABLE keys ADD COLUMN IF NOT EXISTS scopes TEXT NOT NULL DEFAULT '[]'",),
    ),
    BODY_MIGRATION,
    Migration(
        6,
        "response cache: hit or miss, the cost a hit saved, the request that filled it",
        sqlite=(
            "ALTER TABLE requests ADD COLUMN cache TEXT",
            "ALTER TABLE requests ADD COLUMN saved_usd REAL NOT NULL DEFAULT 0",
            "ALTER TABLE requests ADD COLUMN cache_source TEXT",
            "CREATE INDEX IF NOT EXISTS requests_cache_ts ON requests (ts) WHERE cache_source IS NOT NULL",
        ),
        postgres=(
            "ALTER TABLE requests ADD COLUMN IF NOT EXISTS cache TEXT",
            "ALTER TABLE requests ADD COLUMN IF NOT EXISTS saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0",
            "ALTER TABLE requests ADD COLUMN IF NOT EXISTS cache_source TEXT",
            "CREATE INDEX IF NOT EXISTS requests_cache_ts ON requests (ts) WHERE cache_source IS NOT NULL",
        ),
    ),
    Migration(
        7,
        "teams, request tags and end users; keys' teams, default tags and end-user limits",
        sqlite=(
            # Tags as a JSON array: a report filtered by tag scans the ts range it covers anyway.
            "ALTER TABLE requests ADD COLUMN tags TEXT",
            "ALTER TABLE requests ADD COLUMN end_user TEXT",
            # The team at the time of the request: a key moved to another team leaves its history behind.
            "ALTER TABLE requests ADD COLUMN team_id TEXT",
            "CREATE INDEX IF NOT EXISTS requests_team_ts ON requests (team_id, ts) WHERE team_id IS NOT NULL",
            "ALTER TABLE keys ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE keys ADD COLUMN end_user_limits TEXT",
            "ALTER TABLE keys ADD COLUMN team_id TEXT",
            "ALTER TABLE keys ADD COLUMN block_free INTEGER NOT NULL DEFAULT 0",
            _teams_table("REAL", "INTEGER NOT NULL DEFAULT 0"),
            _audit_table("INTEGER PRIMARY KEY", "REAL"),
            "CREATE INDEX IF NOT EXISTS audit_ts ON audit_log (ts)",
        ),
        postgres=(
            "ALTER TABLE requests ADD COLUMN IF NOT EXISTS tags TEXT",
            "ALTER TABLE requests ADD COLUMN IF NOT EXISTS end_user TEXT",
            "ALTER TABLE requests ADD COLUMN IF NOT EXISTS team_id TEXT",
            "CREATE INDEX IF NOT EXISTS requests_team_ts ON requests (team_id, ts) WHERE team_id IS NOT NULL",
            "ALTER TABLE keys ADD COLUMN IF NOT EXISTS tags TEXT NOT NULL DEFAULT '[]'",
            "ALTER TABLE keys ADD COLUMN IF NOT EXISTS end_user_limits TEXT",
            "ALTER TABLE keys ADD COLUMN IF NOT EXISTS team_id TEXT",
            "ALTER TABLE keys ADD COLUMN IF NOT EXISTS block_free BOOLEAN NOT NULL DEFAULT FALSE",
            _teams_table("DOUBLE PRECISION", "BOOLEAN NOT NULL DEFAULT FALSE"),
            _audit_table("BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION"),
            "CREATE INDEX IF NOT EXISTS audit_ts ON audit_log (ts)",
        ),
    ),
    Migration(
        8,
        "an alert threshold per key and team budget (a fraction of it; null: alerts.threshold)",
        sqlite=("ALTER TABLE keys ADD COLUMN alert_at REAL", "ALTER TABLE teams ADD COLUMN alert_at REAL"),
        postgres=(
            "ALTER TABLE keys ADD COLUMN IF NOT EXISTS alert_at DOUBLE PRECISION",
            "ALTER TABLE teams ADD COLUMN IF NOT EXISTS alert_at DOUBLE PRECISION",
        ),
    ),
    Migration(
        9,
        "the bodies' full-text index without word positions (rebuilt by the body log while quiet)",
        sqlite=(
            "DROP TABLE IF EXISTS request_bodies_fts",
            "CREATE VIRTUAL TABLE IF NOT EXISTS request_bodies_fts USING fts5("
            "request, response, content='request_bodies', content_rowid='id', detail=none)",
        ),
        postgres=(),
    ),
    Migration(
        10,
        "the bodies' full-text index without row sizes, merged 16 segments at a time; a mark of what it holds",
        sqlite=(
            "DROP TABLE IF EXISTS request_bodies_fts",
            SQLITE_BODIES_FTS,
            SQLITE_BODIES_FTS_MERGE,
            "CREATE TABLE IF NOT EXISTS request_bodies_indexed (up_to INTEGER NOT NULL)",
            "INSERT INTO request_bodies_indexed (up_to) VALUES (0)",
        ),
        postgres=(),
    ),
)

LATEST = MIGRATIONS[-1].version

SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS llmmux_schema (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at {real} NOT NULL
)"""


class SchemaTooNew(Exception):
    """The ledger was migrated by a newer llmmux; this one will not write to it."""


def check_not_newer(current: int, migrations: Sequence[Migration]) -> None:
    known = max((m.version for m in migrations), default=0)
    if current > known:
        raise SchemaTooNew(
            f"the ledger is at schema version {current}, newer than this llmmux knows ({known}); upgrade llmmux"
        )
