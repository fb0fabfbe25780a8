"""The audit log: who changed what in the gateway's keys and teams, and when; never a secret.

Each admin action writes exactly one row: when, who (`master key`, `console`, an admin
key as `key:<id> (<name>)`, `cli:<os user>`, or `config (SIGHUP)` for a reload the admin
asked of the process), the action, its target, and what changed as `{field: [before, after]}`.
The actions: `key.create|update|revoke`, `team.create|update|delete`, `config.reload`,
`cache.clear`, `provider.probe|drain|restore`, `model.load|unload|pull|delete`, and
`console.logout` (its target a hash of the session's nonce, which every instance on the
ledger reads: `console/logouts.py`). Secrets never reach a row: a key's secret and hash are
not among the fields compared, and any field named like a secret is dropped. Without a
ledger there is nowhere to keep them, and nothing is written.

    await audit.record(store, "master key", "key.update", key.id, before, after)
    rows = await audit.page(store, limit=50)
"""

from __future__ import annotations

import getpass
import time
from typing import Any

import msgspec

from .config.model import Config
from .ledger import Store

# key_hint (the secret's last 4 characters) is shown in key lists, but an audit row needs none of it.
SECRET_FIELDS = frozenset({"key", "key_hint", "secret", "hash", "api_key", "master_key", "password", "authorization"})
PAGE_LIMIT_MAX = 1000


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (a container without one)
        return "cli"


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, list[Any]]:
    """`{field: [before, after]}` for every field that differs; secrets never."""
    old, new = before or {}, after or {}
    return {
        name: [old.get(name), new.get(name)]
        for name in dict.fromkeys([*old, *new])
        if name not in SECRET_FIELDS and old.get(name) != new.get(name)
    }


async def record(
    store: Store,
    actor: str,
    action: str,
    target: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: float | None = None,
) -> None:
    await store.execute(
        "INSERT INTO audit_log (ts, actor, action, target, changes) VALUES (?, ?, ?, ?, ?)",
        (
            now if now is not None else time.time(),
            actor,
            action,
            target,
            msgspec.json.encode(changes(before, after)).decode(),
        ),
    )


def config_summary(config: Config) -> dict[str, Any]:
    """What a reload is audited by: the names of providers and routes (never their settings, which hold keys)."""
    return {"providers": sorted(config.providers), "routes": sorted(config.routing.exact)}


async def page(
    store: Store,
    limit: int = 50,
    before: int | None = None,
    *,
    action: str | None = None,
    actor: str | None = None,
    target: str | None = None,
    since: float | None = None,
) -> list[dict[str, Any]]:
    """The newest rows first; pass the last row's `id` as `before` for the next page.

    `action` is a whole action (`key.update`) or a kind of them (`key`); `actor` and `target` match exactly.
    """
    sql = "SELECT id, ts, actor, action, target, changes FROM audit_log"
    where: list[str] = []
    args: list[Any] = []
    if before is not None:
        where.append("id < ?")
        args.append(before)
    if action:
        where.append("(action = ? OR action LIKE ?)")
        args += [action, action.replace("%", "").replace("_", "") + ".%"]
    for column, value in (("actor", actor), ("target", target)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if since is not None:
        where.append("ts >= ?")
        args.append(since)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    rows = await store.fetch(sql, (*args, max(1, min(limit, PAGE_LIMIT_MAX))))
    return [
        {"id": i, "ts": ts, "actor": actor, "action": action, "target": target, "changes": msgspec.json.decode(c)}
        for i, ts, actor, action, target, c in rows
    ]
