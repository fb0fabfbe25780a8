"""`llmmux status`: the instances of a running gateway, their heartbeats and config drift."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from ..config.units import format_duration
from .common import config_option
from .ps import KEY_ENV, _server

COLUMNS = ("INSTANCE", "VERSION", "CONFIG", "UP", "IN FLIGHT", "SEEN")


@click.command()
@config_option
@click.option("--url", default=None, help="The llmmux server (default: server.host/port from the config).")
@click.option("--json", "as_json", is_flag=True, help="Print the raw answer as JSON.")
def status(config_path: Path | None, url: str | None, as_json: bool) -> None:
    """Show every live instance of a running gateway; flags instances on another config."""
    base, key = _server(config_path, url)
    answer = _fetch(base, key)
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    click.echo(render(answer["data"], time.time()))
    if answer.get("drift"):
        click.echo("\nconfig drift: instances marked * run a different config than the others", err=True)
        sys.exit(3)


def render(rows: list[dict[str, Any]], now: float) -> str:
    table = [COLUMNS] + [_cells(row, now) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table)


def _cells(row: dict[str, Any], now: float) -> tuple[str, ...]:
    drift = " *" if row.get("config_drift") else ""
    seen = row.get("seen")
    return (
        str(row.get("id", "?")),
        str(row.get("version", "?")),
        f"{row.get('config_hash', '?')}{drift}",
        format_duration(now - row["started"]) if row.get("started") else "-",
        str(row.get("in_flight", 0)),
        format_duration(now - seen) + " ago" if seen else "now",
    )


def _fetch(base: str, key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(base + "/admin/instances", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
            return answer
    except urllib.error.HTTPError as exc:
        hint = f" (set {KEY_ENV})" if exc.code == 401 else ""
        click.echo(f"llmmux status: {base} answered {exc.code}{hint}", err=True)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        click.echo(f"llmmux status: no llmmux server at {base} ({reason})", err=True)
    sys.exit(1)
