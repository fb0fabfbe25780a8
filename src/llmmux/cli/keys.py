"""`llmmux keys`: create, list, update and revoke virtual keys in the ledger."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import msgspec

from .. import audit
from ..keys import DEFAULT_BUDGET_PERIOD, KEYS_CHANNEL, VirtualKey, budget_starts
from ..ledger import Store, keyops, teamops
from ..periods import BUDGET_PERIODS, parse_moment
from ..shared.open import announce
from .common import config_option, config_or_exit, find_config_or_none
from .ledger_common import db_option, run_with_store, store_for

NONE_WORDS = ("none", "never", "unlimited", "")


@click.group()
def keys() -> None:
    """Virtual API keys with budgets, rate limits and model lists."""


F = TypeVar("F", bound=Callable[..., Any])


def _limit_options(creating: bool) -> Callable[[F], F]:
    def wrap(fn: F) -> F:
        options = [
            click.option("--budget", default=None, help="USD the key may spend per budget period ('none' to clear)."),
            click.option(
                "--budget-period",
                type=click.Choice(BUDGET_PERIODS),
                default=None,
                help=f"When the budget resets (calendar, UTC; default {DEFAULT_BUDGET_PERIOD}).",
            ),
            click.option("--rpm", default=None, help="Requests per minute ('none' to clear)."),
            click.option("--tpm", default=None, help="Tokens per minute ('none' to clear)."),
            click.option(
                "--models",
                default=None,
                help="Comma-separated model names or globs, e.g. 'gpt-4o,llama*' ('*' or 'none': every model).",
            ),
            click.option(
                "--expires", default=None, help="A duration (30d, 12h) or a date (2026-12-31); 'never' to clear."
            ),
            click.option(
                "--scope",
                "scopes",
                multiple=True,
                help="What the key may do besides calling models: admin, metrics (repeatable; 'none' to clear).",
            ),
            click.option(
                "--block-free/--allow-free", default=None, help="Past the budget, refuse $0 (local) models too."
            ),
            click.option("--team", default=None, help="The team (id or name) it draws on too ('none' to leave)."),
            click.option(
                "--alert-at",
                default=None,
                help="Alert (log, webhook) at this fraction of the budget, e.g. 0.9 ('none': alerts.threshold).",
            ),
            click.option(
                "--tags", default=None, help="Tags added to every request of the key, 'a,b' ('none' to clear)."
            ),
            click.option(
                "--end-user-rpm", default=None, help="Requests per minute for each end user of the key on its own."
            ),
            click.option(
                "--end-user-budget",
                default=None,
                help="USD each end user of the key may spend per the key's budget period. With --end-user-rpm,"
                " these replace the key's end-user limits together ('none' clears both).",
            ),
        ]
        if not creating:
            options.append(click.option("--name", default=None, help="A new name."))
        for option in reversed(options):
            fn = option(fn)
        return fn

    return wrap


def _changes(
    budget: str | None,
    budget_period: str | None,
    rpm: str | None,
    tpm: str | None,
    models: str | None,
    expires: str | None,
    scopes: tuple[str, ...] = (),
    tags: str | None = None,
    end_user_rpm: str | None = None,
    end_user_budget: str | None = None,
    team: str | None = None,
    block_free: bool | None = None,
    alert_at: str | None = None,
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if alert_at is not None:
        changes["alert_at"] = alert_at_option(alert_at)
    if scopes:
        changes["scopes"] = [] if [s.lower() for s in scopes] in (["none"], ["-"]) else ",".join(scopes)
    if block_free is not None:
        changes["block_free"] = block_free
    if team is not None:
        changes["team"] = None if team.strip().lower() in NONE_WORDS else team
    if tags is not None:
        changes["tags"] = [] if tags.strip().lower() in NONE_WORDS else tags
    if end_user_rpm is not None or end_user_budget is not None:
        changes["end_user_limits"] = _end_user_limits(end_user_rpm, end_user_budget)
    try:
        if budget is not None:
            changes["budget_usd"] = None if budget.lower() in NONE_WORDS else float(budget)
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None:
                changes[name] = None if value.lower() in NONE_WORDS else int(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if budget_period is not None:
        changes["budget_period"] = budget_period
    if models is not None:
        changes["models"] = [] if models.strip().lower() in ("*", *NONE_WORDS) else models
    if expires is not None:
        try:
            changes["expires_at"] = (
                None if expires.lower() in NONE_WORDS else parse_moment(expires, time.time(), future=True)
            )
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--expires") from None
    return changes


def alert_at_option(text: str) -> float | None:
    """`--alert-at 0.9`, or 'none' for the config's `alerts.threshold`."""
    if text.strip().lower() in NONE_WORDS:
        return None
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"expected a fraction such as 0.8, got {text!r}", param_hint="--alert-at") from None


def _end_user_limits(rpm: str | None, budget: str | None) -> dict[str, Any] | None:
    given = [v for v in (rpm, budget) if v is not None]
    if all(v.lower() in NONE_WORDS for v in given):
        return None
    try:
        return {
            "rpm": int(rpm) if rpm is not None and rpm.lower() not in NONE_WORDS else None,
            "budget": float(budget) if budget is not None and budget.lower() not in NONE_WORDS else None,
        }
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@keys.command()
@config_option
@db_option
@click.option("--name", required=True, help="Who or what the key is for.")
@_limit_options(creating=True)
@click.option("--json", "as_json", is_flag=True, help="Print the key (and its secret) as JSON.")
def create(config_path: Path | None, db: str | None, name: str, as_json: bool, **limits: Any) -> None:
    """Create a key; its secret is printed once and stored only as a hash."""
    changes = _changes(**limits)

    async def work(store: Store) -> tuple[VirtualKey, str]:
        try:
            key, secret = await keyops.create_key(
                store, name, **await teamops.resolve_team_field(store, changes, creating=True)
            )
            await audit.record(store, audit.cli_actor(), "key.create", key.id, None, key.public(time.time()))
            return key, secret
        except (ValueError, LookupError) as exc:
            raise click.BadParameter(str(exc.args[0] if exc.args else exc)) from None

    key, secret = run_with_store(store_for(config_path, db), work)
    if as_json:
        click.echo(msgspec.json.encode({"key": secret, **key.public(time.time())}))
        return
    click.echo(f"Created key {key.id} ({key.name}): {describe_limits(key)}", err=True)
    click.echo("The secret, shown this once (llmmux keeps only its hash):", err=True)
    click.echo(secret)


@keys.command(name="list")
@config_option
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def list_keys(config_path: Path | None, db: str | None, as_json: bool) -> None:
    """List keys with their state, limits and spend this period (never a secret)."""

    async def work(store: Store) -> tuple[list[VirtualKey], dict[str, float]]:
        found = await store.list_keys()
        return found, await store.key_spend(budget_starts(found, time.time()))

    found, spend = run_with_store(store_for(config_path, db), work)
    now = time.time()
    if as_json:
        for key in found:
            click.echo(msgspec.json.encode(key.public(now, spend.get(key.id))))
        return
    if not found:
        click.echo("no keys yet: llmmux keys create --name NAME", err=True)
        return
    click.echo(f"{'ID':<21} {'NAME':<20} {'STATE':<8} {'KEY':<18} LIMITS")
    for key in found:
        spent = f"; spent ${spend[key.id]:.6f}" if key.id in spend else ""
        click.echo(f"{key.id:<21} {key.name[:20]:<20} {key.state(now):<8} {key.hint:<18} {describe_limits(key)}{spent}")


@keys.command()
@config_option
@db_option
@click.argument("key")
def revoke(config_path: Path | None, db: str | None, key: str) -> None:
    """Revoke KEY (an id, or a name held by one key). Its records stay in the ledger."""
    found = run_with_store(store_for(config_path, db), lambda store: _or_usage_error(_revoke(store, key)))
    when = "at once" if _announce(config_path, db, found) else "within the ledger's refresh interval"
    click.echo(f"Revoked {found.id} ({found.name}); running gateways refuse it {when}.")


@keys.command()
@config_option
@db_option
@click.argument("key")
@_limit_options(creating=False)
def update(config_path: Path | None, db: str | None, key: str, name: str | None, **limits: Any) -> None:
    """Change KEY's name, budget, limits, models or expiry."""
    changes = _changes(**limits)
    if name is not None:
        changes["name"] = name
    if not changes:
        raise click.UsageError(
            "nothing to change: pass --name, --budget, --rpm, --tpm, --models, --scope, --expires, --tags,"
            " --team or --end-user-*"
        )
    found = run_with_store(store_for(config_path, db), lambda store: _or_usage_error(_update(store, key, changes)))
    _announce(config_path, db, found)
    click.echo(f"Updated {found.id} ({found.name}): {describe_limits(found)}")


async def _update(store: Store, key: str, changes: dict[str, Any]) -> VirtualKey:
    before = (await keyops.find_key(store, key)).public(time.time())
    changed = await keyops.update_key(store, key, await teamops.resolve_team_field(store, changes))
    await audit.record(store, audit.cli_actor(), "key.update", changed.id, before, changed.public(time.time()))
    return changed


async def _revoke(store: Store, key: str) -> VirtualKey:
    before = (await keyops.find_key(store, key)).public(time.time())
    changed = await keyops.revoke_key(store, key)
    await audit.record(store, audit.cli_actor(), "key.revoke", changed.id, before, changed.public(time.time()))
    return changed


def _announce(config_path: Path | None, db: str | None, key: VirtualKey) -> bool:
    """Tell running instances sharing state on Redis to reload the key now (not at their next refresh)."""
    path = None if db else find_config_or_none(config_path)
    if path is None:
        return False
    config = config_or_exit(path)
    return announce(config.state, KEYS_CHANNEL, key.id.encode())


async def _or_usage_error(work: Any) -> VirtualKey:
    try:
        return await work  # type: ignore[no-any-return]
    except (LookupError, ValueError) as exc:
        raise click.UsageError(str(exc.args[0] if exc.args else exc)) from None


def describe_limits(key: VirtualKey) -> str:
    parts = []
    if key.budget_usd is not None:
        parts.append(f"budget ${key.budget_usd:g} {key.budget_period}")
    if key.rpm:
        parts.append(f"{key.rpm} rpm")
    if key.tpm:
        parts.append(f"{key.tpm} tpm")
    parts.append("models " + ",".join(key.models) if key.models else "all models")
    if key.scopes:
        parts.append("scopes " + ",".join(key.scopes))
    if key.expires_at is not None:
        parts.append("expires " + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(key.expires_at)))
    if key.tags:
        parts.append("tags " + ",".join(key.tags))
    if key.team_id is not None:
        parts.append(f"team {key.team_id}")
    if key.block_free:
        parts.append("free models blocked past the budget")
    limits = key.end_user_limits
    if limits is not None:
        each = [f"{limits.rpm} rpm"] if limits.rpm else []
        each += [f"${limits.budget_usd:g}"] if limits.budget_usd is not None else []
        parts.append("each end user " + " ".join(each))
    return ", ".join(parts)
