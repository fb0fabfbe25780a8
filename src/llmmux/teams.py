"""Teams: a budget, rate limits, allowed models and defaults that several keys share.

A team is a key's limits without a secret, so it is held in a second `KeyRing` (kind
"team") and admitted the same way: a request of a key in a team must pass the key's own
checks and then the team's, so the stricter of each wins. Spend is recorded per request
with the team the key was in at the time, so moving a key to another team leaves its
history with the old team and charges only its new requests to the new one.

    team = make_team("search", budget_usd=500, budget_period="monthly", rpm=600)
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .keys import VirtualKey, apply_changes
from .periods import iso

TEAM_FIELDS = (
    "name",
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
# What a team's `key_defaults` may set for keys created in it (their own fields win).
KEY_DEFAULT_FIELDS = (
    "budget_usd",
    "budget_period",
    "rpm",
    "tpm",
    "models",
    "tags",
    "end_user_limits",
    "block_free",
    "alert_at",
)


TEAM_CHANGED = b"team:"  # on the keys channel, then the team's id: every process reloads its keys and teams


def new_team_id() -> str:
    return "team_" + secrets.token_hex(6)


@dataclass(slots=True)
class Team(VirtualKey):
    """A team as stored. `hash` and `hint` are unused (a team has no secret); the ring needs them unique."""

    key_defaults: dict[str, Any] = field(default_factory=dict)  # settings for keys created in the team

    def public(self, now: float, spend: float | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": iso(self.created_at),
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "spend_usd": spend,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "models": list(self.models),
            "tags": list(self.tags),
            "end_user_limits": self.end_user_limits.public() if self.end_user_limits else None,
            "block_free": self.block_free,
            "alert_at": self.alert_at,
            "key_defaults": dict(self.key_defaults),
        }


def team(id: str, name: str, created_at: float, **fields: Any) -> Team:
    return Team(id, name, f"team:{id}", "", created_at, **fields)


def make_team(name: str, *, now: float | None = None, **fields: Any) -> Team:
    """A new team; ValueError says what is wrong with a field."""
    made = team(new_team_id(), name, now if now is not None else time.time())
    apply_team_changes(made, {"name": name, **fields})
    return made


def apply_team_changes(target: Team, changes: dict[str, Any]) -> None:
    for name in changes:
        if name not in TEAM_FIELDS:
            raise ValueError(f"unknown team field {name!r} (known: {', '.join(TEAM_FIELDS)})")
    changes = dict(changes)
    if "key_defaults" in changes:
        target.key_defaults = parse_key_defaults(changes.pop("key_defaults"))
    apply_changes(target, changes)


def parse_key_defaults(value: Any) -> dict[str, Any]:
    """`{budget: 10, rpm: 60, models: [...]}`, checked as a key's fields would be; stored as given."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("key_defaults: expected a mapping of key settings")
    defaults = {("budget_usd" if k == "budget" else k): v for k, v in value.items()}
    unknown = set(defaults) - set(KEY_DEFAULT_FIELDS)
    if unknown:
        raise ValueError(f"key_defaults: unknown {', '.join(sorted(unknown))} (known: {', '.join(KEY_DEFAULT_FIELDS)})")
    probe = VirtualKey("", "", "", "", 0.0)
    apply_changes(probe, defaults)  # raises ValueError naming the bad field
    return defaults
