"""`llmmux teams`: create, list, update and delete teams, whose budget and limits their keys share."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from .. import audit
from ..keys import KEYS_CHANNEL, budget_starts
from ..ledger import Store, teamops
from ..periods import BUDGET_PERIODS
from ..shared.open import announce
from ..teams import TEAM_CHANGED, Team
from .common import config_option, config_or_exit, find_config_or_none
from .keys import _changes as key_changes
from .keys import alert_at_option, describe_limits
from .ledger_common import db_option, run_with_store, store_for

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
def teams() -> None:
    """Teams: a budget, rate limits, models and tags that several keys share (the stricter limit wins)."""


def _team_options(fn: F) -> F:
    options = [
        click.option("--budget", default=None, help="USD the team's keys may spend together per period ('none')."),
        click.option("--budget-period", type=click.Choice(BUDGET_PERIODS), default=None, help="When it resets."),
        click.option("--rpm", default=None, help="Requests per minute for all its keys together ('none')."),
        click.option("--tpm", default=None, help="Tokens per minute for all its keys together ('none')."),
        click.option("--models", default=None, help="Comma-separated model names or globs ('*': every model)."),
        click.option("--tags", default=None, help="Tags added to every request of its keys, 'a,b' ('none')."),
        click.option("--end-user-rpm", default=None, help="Requests per minute for each end user on its own."),
        click.option("--end-user-budget", default=None, help="USD per period for each end user on its own."),
        click.option("--block-free/--allow-free", default=None, help="Past the budget, refuse $0 models too."),
        click.option(
            "--alert-at", default=None, help="Alert at this fraction of the budget, e.g. 0.9 ('none': the default)."
        ),
        click.option(
            "--key-defaults",
            default=None,
            help="Settings for keys created in the team, as JSON: '{\"budget\": 20, \"rpm\": 60}' ('none' clears).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _changes(
    budget: str | None,
    budget_period: str | None,
    rpm: str | None,
    tpm: str | None,
    models: str | None,
    tags: str | None,
    end_user_rpm: str | None,
    end_user_budget: str | None,
    block_free: bool | None,
    key_defaults: str | None,
    alert_at: str | None = None,
) -> dict[str, Any]:
    changes = key_changes(
        budget,
        budget_period,
        rpm,
        tpm,
        models,
        None,
        tags=tags,
        end_user_rpm=end_user_rpm,
        end_user_budget=end_user_budget,
    )
    if block_free is not None:
        changes["block_free"] = block_free
    if alert_at is not None:
        changes["alert_at"] = alert_at_option(alert_at)
    if key_defaults is not None:
        try:
            changes["key_defaults"] = None if key_defaults.lower() == "none" else msgspec.json.decode(key_defaults)
        except msgspec.DecodeError:
            raise click.BadParameter("expected a JSON object", param_hint="--key-defaults") from None
    return changes


@teams.command()
@config_option
@db_option
@click.option("--name", required=True, help="The team's name (unique).")
@_team_options
@click.option("--json", "as_json", is_flag=True, help="Print the team as JSON.")
def create(config_path: Path | None, db: str | None, name: str, as_json: bool, **fields: Any) -> None:
    """Create a team; add keys with `llmmux keys update KEY --team NAME`."""
    changes = _changes(**fields)

    async def work(store: Store) -> Team:
        made = await teamops.create_team(store, name, **changes)
        await audit.record(store, audit.cli_actor(), "team.create", made.id, None, made.public(time.time()))
        return made

    made = run_with_store(store_for(config_path, db), lambda s: _or_usage_error(work(s)))
    if as_json:
        click.echo(msgspec.json.encode(made.public(time.time())))
        return
    click.echo(f"Created team {made.id} ({made.name}): {describe_limits(made)}")


@teams.command(name="list")
@config_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def list_teams(config_path: Path | None, db: str | None, as_json: bool) -> None:
    """List teams with their limits, members and spend this period."""

    async def work(store: Store) -> tuple[list[Team], dict[str, float], dict[str, int]]:
        found = await teamops.list_teams(store)
        spend = await store.key_spend(budget_starts(found, time.time()), "team_id")
        members: dict[str, int] = {}
        for key in await store.list_keys():
            if key.team_id is not None:
                members[key.team_id] = members.get(key.team_id, 0) + 1
        return found, spend, members

    found, spend, members = run_with_store(store_for(config_path, db), work)
    now = time.time()
    if as_json:
        for team in found:
            click.echo(msgspec.json.encode({**team.public(now, spend.get(team.id)), "keys": members.get(team.id, 0)}))
        return
    if not found:
        click.echo("no teams yet: llmmux teams create --name NAME", err=True)
        return
    click.echo(f"{'ID':<18} {'NAME':<20} {'KEYS':>4}  LIMITS")
    for team in found:
        spent = f"; spent ${spend[team.id]:.6f}" if team.id in spend else ""
        count = members.get(team.id, 0)
        click.echo(f"{team.id:<18} {team.name[:20]:<20} {count:>4}  {describe_limits(team)}{spent}")


@teams.command()
@config_option
@db_option
@click.argument("team")
@click.option("--name", default=None, help="A new name.")
@_team_options
def update(config_path: Path | None, db: str | None, team: str, name: str | None, **fields: Any) -> None:
    """Change TEAM's (an id or name) budget, limits, models, tags or end-user limits."""
    changes = _changes(**fields)
    if name is not None:
        changes["name"] = name
    if not changes:
        raise click.UsageError("nothing to change: pass --name, --budget, --rpm, --tpm, --models, --tags, ...")

    async def work(store: Store) -> Team:
        before = (await teamops.find_team(store, team)).public(time.time())
        changed = await teamops.update_team(store, team, changes)
        await audit.record(store, audit.cli_actor(), "team.update", changed.id, before, changed.public(time.time()))
        return changed

    found = run_with_store(store_for(config_path, db), lambda s: _or_usage_error(work(s)))
    _announce(config_path, db, found.id)
    click.echo(f"Updated {found.id} ({found.name}): {describe_limits(found)}")


@teams.command()
@config_option
@db_option
@click.argument("team")
def delete(config_path: Path | None, db: str | None, team: str) -> None:
    """Delete TEAM; its keys leave it and keep working on their own limits; its records stay."""

    async def work(store: Store) -> tuple[Team, int]:
        gone, members = await teamops.delete_team(store, team)
        await audit.record(store, audit.cli_actor(), "team.delete", gone.id, gone.public(time.time()), None)
        return gone, members

    gone, members = run_with_store(store_for(config_path, db), lambda s: _or_usage_error(work(s)))
    _announce(config_path, db, gone.id)
    click.echo(f"Deleted team {gone.id} ({gone.name}); {members} key(s) left it.")


def _announce(config_path: Path | None, db: str | None, team_id: str) -> bool:
    """Tell running instances sharing state on Redis to reload their teams now (not at their next refresh)."""
    path = None if db else find_config_or_none(config_path)
    if path is None:
        return False
    config = config_or_exit(path)
    return announce(config.state, KEYS_CHANNEL, TEAM_CHANGED + team_id.encode())


async def _or_usage_error(work: Any) -> Any:
    try:
        return await work
    except (LookupError, ValueError) as exc:
        raise click.UsageError(str(exc.args[0] if exc.args else exc)) from None
