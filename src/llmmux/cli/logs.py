"""`llmmux logs NAME`: the output of a managed model server (a provider with `launch:`)."""

from __future__ import annotations

import sys
import time
from collections import deque
from pathlib import Path

import click

from ..config.launch import log_path
from .common import config_option, config_or_exit, find_config_or_none

FOLLOW_INTERVAL_S = 0.5


@click.command()
@config_option
@click.argument("name")
@click.option("--lines", "-n", default=100, show_default=True, help="How many of the last lines to print.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines as the server writes them.")
def logs(config_path: Path | None, name: str, lines: int, follow: bool) -> None:
    """Print the log of the managed server of provider NAME."""
    path = find_log(config_path, name)
    if not path.exists():
        click.echo(f"llmmux logs: {name} has not written a log yet ({path}); it starts on its first request", err=True)
        sys.exit(1)
    with path.open("rb") as f:
        for line in deque(f, maxlen=lines):
            click.echo(line.decode("utf-8", "replace"), nl=False)
        while follow:
            line = f.readline()
            if line:
                click.echo(line.decode("utf-8", "replace"), nl=False)
            else:
                time.sleep(FOLLOW_INTERVAL_S)


def find_log(config_path: Path | None, name: str) -> Path:
    """The log file of provider `name`: from its `launch:` block, else the default location."""
    path = find_config_or_none(config_path)
    if path is None:
        return log_path(name)
    config = config_or_exit(path)
    provider = config.providers.get(name)
    if provider is None or provider.launch is None:
        managed = sorted(n for n, p in config.providers.items() if p.launch is not None)
        known = ", ".join(managed) or "none"
        raise click.UsageError(f"{name} is not a managed server in {path} (managed servers: {known})")
    return provider.launch.log_file
