"""`llmmux audit`: who changed which key or team, when, and what changed (never a secret)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import msgspec

from .. import audit as audit_log
from ..ledger import Store
from ..periods import iso
from .common import config_option
from .ledger_common import db_option, run_with_store, store_for


@click.command()
@config_option
@db_option
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1, audit_log.PAGE_LIMIT_MAX))
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines, as GET /admin/audit returns them.")
def audit(config_path: Path | None, db: str | None, limit: int, as_json: bool) -> None:
    """The newest admin actions first: keys and teams created, changed, revoked or deleted."""

    async def work(store: Store) -> list[dict[str, Any]]:
        return await audit_log.page(store, limit)

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
        click.echo(f"{iso(row['ts'])}  {row['actor']:<16} {row['action']:<12} {row['target'] or '-'}  {changed}")
