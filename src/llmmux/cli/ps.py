"""`llmmux ps`: the local models of a running llmmux: what is loaded, memory, last use, in flight."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from ..config.env import lookup
from ..config.model import DEFAULT_HOST, DEFAULT_PORT
from ..config.units import format_duration, format_size
from .common import config_option, config_or_exit, find_config_or_none

KEY_ENV = "LLMMUX_MASTER_KEY"
COLUMNS = ("MODEL", "PROVIDER", "KIND", "STATE", "MEMORY", "IN FLIGHT", "QUEUED", "LAST USED", "UNTIL")


@click.command()
@config_option
@click.option(
    "--url",
    default=None,
    help=f"The llmmux server (default: server.host/port from the config, else http://{DEFAULT_HOST}:{DEFAULT_PORT}).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw rows as JSON.")
def ps(config_path: Path | None, url: str | None, as_json: bool) -> None:
    """Show the local models of a running llmmux server."""
    base, key = _server(config_path, url)
    rows = _fetch(base, key)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no local models are configured on this server")
        return
    click.echo(render(rows, time.time()))


def render(rows: list[dict[str, Any]], now: float) -> str:
    """The status table, as `ollama ps` prints its own."""
    table = [COLUMNS] + [_cells(row, now) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table)


def _cells(row: dict[str, Any], now: float) -> tuple[str, ...]:
    loaded = row["state"] in ("ready", "draining", "loading")
    if not loaded:
        until = "-"
    elif row.get("expires_at") is not None:
        until = format_duration(row["expires_at"] - now) + " from now"
    elif row.get("in_flight"):
        until = "busy"
    else:
        until = "forever" if row.get("keep_alive") is None else "-"
    last = format_duration(now - row["last_used"]) + " ago" if row.get("last_used") else "never"
    memory = format_size(row["memory"]) if row.get("memory") else "-"
    return (
        row["model"],
        row["provider"],
        row["kind"],
        row["state"],
        memory,
        str(row.get("in_flight", 0)),
        str(row.get("queued", 0)),
        last,
        until,
    )


def _server(config_path: Path | None, url: str | None) -> tuple[str, str | None]:
    key = lookup(KEY_ENV)
    if url:
        return url.rstrip("/"), key
    path = find_config_or_none(config_path)
    if path is None:
        return f"http://{DEFAULT_HOST}:{DEFAULT_PORT}", key
    config = config_or_exit(path)
    host = "127.0.0.1" if config.server.host in ("0.0.0.0", "::", "") else config.server.host
    return f"http://{host}:{config.server.port}", key or config.server.master_key


def _fetch(base: str, key: str | None) -> list[dict[str, Any]]:
    request = urllib.request.Request(base + "/admin/models", headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            rows: list[dict[str, Any]] = json.load(response)["data"]
            return rows
    except urllib.error.HTTPError as exc:
        hint = f" (set {KEY_ENV})" if exc.code == 401 else ""
        click.echo(f"llmmux ps: {base} answered {exc.code}{hint}", err=True)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        click.echo(f"llmmux ps: no llmmux server at {base} ({reason}); start one with `llmmux serve`", err=True)
    sys.exit(1)
