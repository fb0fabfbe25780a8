"""`llmmux audit`: who changed which key or team, when, and what changed (never a secret)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import msgspec

from .. import audit as audit_log
from ..ledger import Store
from ..periods import iso, parse_moment
from .common import config_option
from .ledger_common import db_option, run_with_store, store_for


@click.command()
@config_option
@db_option
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1, audit_log.PAGE_LIMIT_MAX))
@click.option("--action", default=None, help="One action (key.update) or a kind of them (key, team, provider, config).")
@click.option("--actor", default=None, help="Who did it, as the rows name them ('master key', 'cli:alice').")
@click.option("--target", default=None, help="A key's or team's id, a provider's or model's name.")
@click.option("--since", default=None, help="Only newer ones: a duration (24h, 7d) or a date.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, as GET /admin/audit returns them.")
def audit(
    config_path: Path | None,
    db: str | None,
    limit: int,
    action: str | None,
    actor: str | None,
    target: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """The newest admin actions first: keys, teams, reloads, cache clears, providers and local models."""
    try:
        start = parse_moment(since, time.time(), future=False) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None

    async def work(store: Store) -> list[dict[str, Any]]:
        return await audit_log.page(store, limit, action=action, actor=actor, target=target, since=start)

    rows = run_with_store(store_for(config_path, db), work)
    if as_json:
        for row in rows:
            click.echo(msgspec.json.encode(row))
        return
    if not rows:
        click.echo("no admin actions recorded yet", err=True)
        return
    for row in rows:
        changed = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in row["changes"].items())
        click.echo(f"{iso(row['ts'])}  {row['actor']:<16} {row['action']:<16} {row['target'] or '-'}  {changed}")
