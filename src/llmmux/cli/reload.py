"""`llmmux reload`: make a running gateway re-read its config; `--all` every instance of it."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import click

from ..config.problems import Problem
from .common import config_option
from .ps import KEY_ENV, _server


@click.command()
@config_option
@click.option("--url", default=None, help="The llmmux server (default: server.host/port from the config).")
@click.option("--all", "everywhere", is_flag=True, help="Every instance sharing its state (Redis), not only this one.")
def reload(config_path: Path | None, url: str | None, everywhere: bool) -> None:
    """Reload the config of a running gateway (a bad config is refused and the old one kept)."""
    base, key = _server(config_path, url)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    body = json.dumps({"all": everywhere}).encode()
    request = urllib.request.Request(base + "/admin/reload", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        hint = f" (set {KEY_ENV})" if exc.code == 401 else ""
        click.echo(f"llmmux reload: {base} answered {exc.code}{hint}", err=True)
        sys.exit(1)
    except (urllib.error.URLError, OSError) as exc:
        click.echo(f"llmmux reload: no llmmux server at {base} ({getattr(exc, 'reason', exc)})", err=True)
        sys.exit(1)
    if not answer.get("reloaded"):
        for problem in answer.get("problems") or ():  # each as `llmmux validate` and the gateway's log print it
            if problem.get("level") == "error":
                click.echo(str(Problem("error", problem["file"], problem["path"], problem["message"])), err=True)
        click.echo("llmmux reload: the config was refused; the old one is kept", err=True)
        sys.exit(2)
    where = "every instance was told to reload" if answer.get("broadcast") else "reloaded"
    click.echo(f"llmmux reload: {where}")
