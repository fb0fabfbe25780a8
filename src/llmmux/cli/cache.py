"""`llmmux cache stats | clear`: the response cache of a running llmmux, through its admin API."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import click

from .common import config_option
from .ps import KEY_ENV, _server

url_option = click.option("--url", default=None, help="The llmmux server (default: server.host/port from the config).")


@click.group()
def cache() -> None:
    """Inspect or empty the response cache of a running llmmux (needs the master key)."""


@cache.command()
@config_option
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print the JSON of GET /admin/cache.")
def stats(config_path: Path | None, url: str | None, as_json: bool) -> None:
    """Entries, bytes, hits and misses since the server started."""
    body = _call(config_path, url, "GET", {})
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    for name, value in body.items():
        click.echo(f"{name.replace('_', ' '):<16}{'-' if value is None else value}")


@cache.command()
@config_option
@url_option
@click.option("--model", default=None, help="Only this public model's answers.")
@click.option("--key", default=None, help="Only this virtual key's answers (its id or name).")
def clear(config_path: Path | None, url: str | None, model: str | None, key: str | None) -> None:
    """Remove cached answers: all of them, or one model's, or one key's."""
    query = {k: v for k, v in (("model", model), ("key", key)) if v is not None}
    body = _call(config_path, url, "DELETE", query)
    click.echo(f"removed {body['removed']} cached answer(s)")


def _call(config_path: Path | None, url: str | None, method: str, query: dict[str, str]) -> dict[str, Any]:
    base, key = _server(config_path, url)
    target = base + "/admin/cache" + ("?" + urllib.parse.urlencode(query) if query else "")
    request = urllib.request.Request(target, method=method, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        hint = f" (set {KEY_ENV})" if exc.code in (401, 403) else ""
        click.echo(f"llmmux cache: {base} answered {exc.code}{hint}: {detail}", err=True)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        click.echo(f"llmmux cache: no llmmux server at {base} ({reason}); start one with `llmmux serve`", err=True)
    sys.exit(1)
