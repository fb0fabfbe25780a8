"""Teams in the store: create, change, delete, and move keys between them (the CLI and admin API share these)."""

from __future__ import annotations

from typing import Any

import msgspec

from ..enduser import parse_end_user_limits
from ..keys import VirtualKey
from ..teams import Team, apply_team_changes, make_team, team
from .keyops import find_key
from .schema import TEAM_COLUMNS
from .store import Row, Store

_SELECT = f"SELECT {', '.join(TEAM_COLUMNS)} FROM teams"
_INSERT = f"INSERT INTO teams ({', '.join(TEAM_COLUMNS)}) VALUES ({', '.join('?' * len(TEAM_COLUMNS))})"
_UPDATE = f"UPDATE teams SET {', '.join(f'{c} = ?' for c in TEAM_COLUMNS[1:])} WHERE id = ?"


class TeamNotFound(LookupError):
    pass


class TeamExists(ValueError):
    pass


async def list_teams(store: Store) -> list[Team]:
    return [_team(r) for r in await store.fetch(_SELECT + " ORDER BY created_at")]


async def find_team(store: Store, id_or_name: str) -> Team:
    rows = await store.fetch(_SELECT + " WHERE id = ? OR name = ?", (id_or_name, id_or_name))
    if not rows:
        raise TeamNotFound(f"no team with id or name {id_or_name!r}")
    return _team(rows[0])


async def create_team(store: Store, name: str, **fields: Any) -> Team:
    made = make_team(name, **fields)
    if await store.fetch("SELECT id FROM teams WHERE name = ?", (made.name,)):
        raise TeamExists(f"a team named {made.name!r} exists already")
    await store.execute(_INSERT, _row(made))
    return made


async def update_team(store: Store, id_or_name: str, changes: dict[str, Any]) -> Team:
    found = await find_team(store, id_or_name)
    apply_team_changes(found, changes)
    await store.execute(_UPDATE, (*_row(found)[1:], found.id))
    return found


async def delete_team(store: Store, id_or_name: str) -> tuple[Team, int]:
    """Delete a team; its keys leave it (they keep working on their own limits), its records stay."""
    found = await find_team(store, id_or_name)
    members = await store.fetch("SELECT COUNT(*) FROM keys WHERE team_id = ?", (found.id,))
    await store.execute("UPDATE keys SET team_id = NULL WHERE team_id = ?", (found.id,))
    await store.execute("DELETE FROM teams WHERE id = ?", (found.id,))
    return found, int(members[0][0])


async def set_key_team(store: Store, key: str, team_name: str | None) -> VirtualKey:
    """Move a key into a team (by id or name), or out of its team with None; past requests keep their team."""
    found = await find_key(store, key)
    found.team_id = None if team_name is None else (await find_team(store, team_name)).id
    await store.save_key(found)
    return found


async def resolve_team_field(store: Store, changes: dict[str, Any], *, creating: bool = False) -> dict[str, Any]:
    """Key changes with `team` (an id or name, or None) turned into the stored `team_id`.

    A key created in a team takes the team's `key_defaults` for every field it does not set.
    """
    if "team" not in changes:
        return changes
    changes = dict(changes)
    given = changes.pop("team")
    if given is None:
        changes["team_id"] = None
        return changes
    found = await find_team(store, str(given))
    changes["team_id"] = found.id
    return {**found.key_defaults, **changes} if creating else changes


def _row(item: Team) -> Row:
    return (
        item.id,
        item.name,
        item.created_at,
        item.budget_usd,
        item.budget_period,
        item.rpm,
        item.tpm,
        msgspec.json.encode(item.models).decode(),
        msgspec.json.encode(item.tags).decode(),
        msgspec.json.encode(item.end_user_limits.public()).decode() if item.end_user_limits else None,
        item.block_free,
        msgspec.json.encode(item.key_defaults).decode(),
        item.alert_at,
    )


def _team(row: Row) -> Team:
    values = dict(zip(TEAM_COLUMNS, row))
    limits = values.pop("end_user_limits")
    return team(
        values.pop("id"),
        values.pop("name"),
        values.pop("created_at"),
        **{
            **values,
            "models": msgspec.json.decode(values["models"]),
            "tags": msgspec.json.decode(values["tags"]),
            "end_user_limits": parse_end_user_limits(msgspec.json.decode(limits)) if limits else None,
            "block_free": bool(values["block_free"]),
            "key_defaults": msgspec.json.decode(values["key_defaults"]),
        },
    )
