"""`llmmux providers`: what each configured provider is, and what its backend says about the account."""

from __future__ import annotations

import asyncio
import difflib
import sys
from pathlib import Path
from typing import Any

import click

from ..config import Config
from ..errors import LLMMuxError
from ..providers.base import Provider
from ..providers.registry import create_provider, provider_types
from .common import config_option, config_or_exit


@click.group()
def providers() -> None:
    """Inspect the configured providers."""


@providers.command("list")
@config_option
def list_providers(config_path: Path | None) -> None:
    """One line per provider: name, type, status, base URL and whether a key is set."""
    config = _config(config_path)
    types = provider_types()
    for name, entry in config.providers.items():
        kind = types.get(entry.type)
        url = entry.base_url or (kind.base_url if kind else "")
        key = "key set" if entry.api_key else "no key"
        click.echo(f"{name:<20} {entry.type:<18} {entry.status:<9} {key:<8} {url}")


@providers.command("info")
@config_option
@click.argument("name")
@click.option("--models", "show_models", is_flag=True, help="Also list the models the backend reports.")
@click.option("--timeout", default=15.0, show_default=True, help="Seconds for each live request.")
def info(config_path: Path | None, name: str, show_models: bool, timeout: float) -> None:
    """Settings of provider NAME, and live account facts (credits, limits) where the backend reports them."""
    config = _config(config_path)
    if name not in config.providers:
        close = difflib.get_close_matches(name, list(config.providers), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        click.echo(f"no provider named {name!r} in the configuration.{hint}", err=True)
        sys.exit(1)
    entry = config.providers[name]
    if entry.type not in provider_types():
        click.echo(f"provider {name!r} has type {entry.type!r}, which this llmmux does not support", err=True)
        sys.exit(1)
    provider = create_provider(entry, provider_types())
    _print_section(provider.info())
    for problem in provider.validate_config():
        click.echo(f"problem: {problem}", err=True)
    sys.exit(asyncio.run(_live(provider, show_models, timeout)))


async def _live(provider: Provider, show_models: bool, timeout: float) -> int:
    try:
        async with asyncio.timeout(timeout):
            facts = await provider.account()
            if facts:
                click.echo("account:")
                _print_section(facts, indent="  ")
            if show_models:
                _print_models(await provider.list_models())
    except (LLMMuxError, TimeoutError) as exc:
        click.echo(f"live information unavailable: {getattr(exc, 'message', None) or 'timed out'}", err=True)
        return 1
    finally:
        await provider.aclose()
    return 0


def _print_section(facts: dict[str, Any], indent: str = "") -> None:
    width = max((len(key) for key in facts), default=0)
    for key, value in facts.items():
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif value is None or value == "":
            value = "-"
        click.echo(f"{indent}{key:<{width}}  {value}")


def _print_models(models: list[Any]) -> None:
    click.echo(f"models ({len(models)}):")
    for m in models:
        context = f"{m.context_length:>9,} ctx" if m.context_length else " " * 13
        prices = ""
        if m.input_cost_per_mtok is not None or m.output_cost_per_mtok is not None:
            prices = f"  ${m.input_cost_per_mtok or 0:g} in / ${m.output_cost_per_mtok or 0:g} out per M tokens"
        click.echo(f"  {m.id:<50} {context}{prices}")


def _config(config_path: Path | None) -> Config:
    return config_or_exit(config_path)
