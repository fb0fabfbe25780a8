"""What the commands share: finding and loading the config.

Every command reads the config through `llmmux.loading` (as `Router.from_config` and
reload do) and one helper here, so a broken config prints the same lines everywhere:
each problem as `llmmux validate` prints it, then exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from ..config.model import Config
from ..config.paths import CONFIG_ENV
from ..config.paths import find_config as default_config_path
from ..config.problems import ConfigError
from ..loading import Loaded, discovered, load

T = TypeVar("T")

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help=f"A folder with providers.yaml and model-mappings.yaml, or an llmmux.yaml (default: ${CONFIG_ENV}, ./llmmux.yaml, ./config).",
)


def find_config(path: Path | None) -> Path:
    found = find_config_or_none(path)
    if found is None:
        raise click.UsageError("no configuration found: pass --config PATH (a folder or an llmmux.yaml)")
    return found


def find_config_or_none(path: Path | None) -> Path | None:
    """The config path given, in $LLMMUX_CONFIG, or in a default location; None if there is none."""
    return path if path is not None else default_config_path()


def load_or_discover(path: Path | None) -> tuple[Loaded, list[str]]:
    """The config at `path` (or a default location); with none anywhere, what this machine
    offers (the embedded model, local servers, cloud keys), and a line per thing found."""
    found = find_config_or_none(path)
    if found is not None:
        return load_checked(found), []
    from ..local.defaults import default_config  # probes local ports: only when there is no config

    config, lines = default_config()
    return discovered(config), lines


def load_checked(path: Path | None) -> Loaded:
    """Load and check a config; raises ConfigError when it has errors."""
    return load(find_config(path)).raise_for_errors()


def config_or_exit(path: Path | None) -> Config:
    """The checked config at `path` (or a default location); with errors, print them and exit 2."""
    return exit_on_config_error(load_checked, path).config


def exit_on_config_error(load_it: Callable[[Path | None], T], path: Path | None) -> T:
    """`load_it(path)`; a ConfigError prints every problem to stderr and exits 2."""
    try:
        return load_it(path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(2)
