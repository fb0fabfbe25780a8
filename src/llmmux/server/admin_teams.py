"""The admin API's teams, master key only.

POST   /admin/teams           {"name": "search", "budget": 500, "budget_period": "monthly", "rpm": 600,
                               "tpm": 1000000, "models": ["gpt-4o*"], "tags": ["team:search"],
                               "end_user_limits": {"rpm": 10, "budget": 5}, "block_free": false,
                               "key_defaults": {"budget": 20, "rpm": 60}} -> 201
GET    /admin/teams           every team, with its spend this period
GET    /admin/teams/{id}      one team (by id or name)
PATCH  /admin/teams/{id}      change any field above (null clears a limit)
DELETE /admin/teams/{id}      delete; its keys leave it, its records stay

A key joins a team with `"team": "search"` on POST or PATCH /admin/keys (null leaves it); a key
created in a team takes the team's `key_defaults` for each field it does not set.
Every change reloads the gateway's keys and teams, so it holds from the next request.
"""

from __future__ import annotations

import time
from typing import Any

from .. import audit
from ..accounting import Accounting
from ..errors import InvalidRequest, NoSuchTeam
from ..ledger import Store, teamops
from ..teams import Team


class TeamsAdmin:
    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting

    async def route(self, store: Store, method: str, parts: list[str], body: Any, actor: str) -> tuple[int, Any]:
        try:
            if len(parts) == 1 and method == "GET":
                return 200, {"data": [self.public(t) for t in await teamops.list_teams(store)]}
            if len(parts) == 1 and method == "POST":
                fields = team_fields(body, creating=True)
                made = await teamops.create_team(store, fields.pop("name"), **fields)
                await self._changed(store, actor, "team.create", made.id, None, made)
                return 201, self.public(made)
            if len(parts) == 2 and method == "GET":
                return 200, self.public(await teamops.find_team(store, parts[1]))
            if len(parts) == 2 and method == "PATCH":
                before = await teamops.find_team(store, parts[1])
                changed = await teamops.update_team(store, parts[1], team_fields(body, creating=False))
                await self._changed(store, actor, "team.update", changed.id, before, changed)
                return 200, self.public(changed)
            if len(parts) == 2 and method == "DELETE":
                gone, members = await teamops.delete_team(store, parts[1])
                await self._changed(store, actor, "team.delete", gone.id, gone, None)
                return 200, {**self.public(gone), "deleted": True, "keys_removed": members}
        except teamops.TeamNotFound:
            raise NoSuchTeam(f"No team with id or name {parts[1]!r}.", param="id") from None
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        raise InvalidRequest(f"No admin endpoint {method} /admin/{'/'.join(parts)}.")

    async def _changed(
        self, store: Store, actor: str, action: str, target: str, before: Team | None, after: Team | None
    ) -> None:
        """Audit the change, then reload keys and teams so it holds from the next request."""
        now = time.time()
        await audit.record(
            store, actor, action, target, before.public(now) if before else None, after.public(now) if after else None
        )
        await self.accounting.team_changed(target)

    def public(self, team: Team) -> dict[str, Any]:
        spend = self.accounting.teams.spend(team.id) if team.budget_usd is not None else None
        return team.public(time.time(), spend)


def team_fields(body: Any, *, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Expected a JSON object.")
    fields = dict(body)
    if "budget" in fields:
        fields["budget_usd"] = fields.pop("budget")
    if creating and not isinstance(fields.get("name"), str):
        raise InvalidRequest("A team needs a 'name'.", param="name")
    return fields
