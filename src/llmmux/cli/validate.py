"""`llmmux validate`: every problem in a config, with file, key path and what was expected."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ..loading import load
from ..router import Router
from .common import config_option, find_config


@click.command()
@config_option
@click.option("--probe", is_flag=True, help="Also contact every provider's health endpoint.")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds per probe.")
def validate(config_path: Path | None, probe: bool, timeout: float) -> None:
    """Check a configuration; exits non-zero on errors."""
    path = find_config(config_path)
    loaded = load(path)
    config, problems = loaded.config, loaded.problems
    for problem in problems:
        click.echo(str(problem), err=problem.severity == "error")
    errors = len(problems.errors)
    warnings = len(problems) - errors
    unreachable = asyncio.run(_probe(Router(config), timeout)) if probe and not errors else 0
    click.echo(
        f"{path}: {len(config.providers)} providers, {errors} errors, {warnings} warnings"
        + (f", {unreachable} unreachable" if probe and not errors else "")
    )
    sys.exit(1 if errors or unreachable else 0)


async def _probe(router: Router, timeout: float) -> int:
    async with router:
        names = list(router.providers)
        results = await asyncio.gather(*(router.providers[n].health(timeout) for n in names))
    for name, result in zip(names, results):
        state = "reachable" if result.ok else "UNREACHABLE"
        detail = f" ({result.status or ''} {result.detail})".rstrip() if not result.ok else ""
        click.echo(f"probe {name}: {state} {result.url} in {result.latency_ms:.0f} ms{detail}")
    for name, reason in router.skipped.items():
        click.echo(f"probe {name}: skipped, {reason}")
    return sum(not r.ok for r in results)
