"""`llmmux models pull` and `llmmux models rm`: manage the models an Ollama provider holds."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from pathlib import Path
from typing import TextIO

import click

from ..errors import LLMMuxError
from ..providers.ollama import OllamaProvider
from ..providers.registry import create_provider, provider_types
from ..wire.ollama import Progress
from .common import config_option, config_or_exit

provider_option = click.option(
    "--provider",
    "-p",
    "provider_name",
    default=None,
    help="The Ollama provider to act on (default: the only one configured).",
)


@click.command()
@config_option
@provider_option
@click.option("--insecure", is_flag=True, help="Allow an insecure (HTTP) registry.")
@click.argument("name")
@click.pass_context
def pull(ctx: click.Context, config_path: Path | None, provider_name: str | None, insecure: bool, name: str) -> None:
    """Download model NAME onto an Ollama provider, showing progress."""
    provider = _ollama_provider(ctx, config_path, provider_name)
    display = PullDisplay(sys.stderr, tty=sys.stderr.isatty())
    _run(provider, _pull(provider, name, insecure, display))
    click.echo(f"pulled {name} onto {provider.name}")


async def _pull(provider: OllamaProvider, name: str, insecure: bool, display: PullDisplay) -> None:
    try:
        async for progress in provider.pull(name, insecure=insecure):
            display.show(progress)
    finally:
        display.close()


@click.command()
@config_option
@provider_option
@click.argument("name")
@click.pass_context
def rm(ctx: click.Context, config_path: Path | None, provider_name: str | None, name: str) -> None:
    """Delete model NAME and its data from an Ollama provider."""
    provider = _ollama_provider(ctx, config_path, provider_name)
    _run(provider, provider.delete(name))
    click.echo(f"deleted {name} from {provider.name}")


def _run(provider: OllamaProvider, action: Awaitable[None]) -> None:
    """Run one provider action to completion; a failure is one line on stderr and exit status 1."""

    async def main() -> None:
        try:
            await action
        finally:
            await provider.aclose()

    try:
        asyncio.run(main())
    except LLMMuxError as exc:
        click.echo(f"llmmux: {exc.message}", err=True)
        sys.exit(1)


def _ollama_provider(ctx: click.Context, config_path: Path | None, name: str | None) -> OllamaProvider:
    """The named provider, or the only Ollama one; usage errors say what is configured."""
    config = config_or_exit(config_path or (ctx.obj or {}).get("config_path"))
    types = provider_types()
    ollamas = [
        n
        for n, p in config.providers.items()
        if p.type in types and issubclass(types[p.type].provider_class, OllamaProvider)
    ]
    if name is None:
        if len(ollamas) != 1:
            found = ", ".join(ollamas) or "none"
            raise click.UsageError(f"pass --provider: {len(ollamas)} Ollama providers are configured ({found})")
        name = ollamas[0]
    elif name not in ollamas:
        why = "is not configured" if name not in config.providers else "does not speak Ollama's API"
        raise click.UsageError(f"provider {name!r} {why}; Ollama providers: {', '.join(ollamas) or 'none'}")
    provider = create_provider(config.providers[name], types)
    assert isinstance(provider, OllamaProvider)  # checked through its type row above
    return provider


class PullDisplay:
    """Ollama's pull progress on a terminal (a line redrawn in place) or in a log (each step once)."""

    def __init__(self, out: TextIO, *, tty: bool) -> None:
        self._out = out
        self._tty = tty
        self._last = ""
        self._open = False  # a redrawn line is on screen without its newline

    def show(self, progress: Progress) -> None:
        if progress.total:
            self._layer(progress)
        elif progress.status != self._last:
            self._end_line()
            self._write(progress.status + "\n")
        self._last = progress.status

    def _layer(self, progress: Progress) -> None:
        total = progress.total or 0
        done = min(progress.completed or 0, total)
        if self._tty:
            line = f"{progress.status}: {100 * done // total:3d}% {_size(done)}/{_size(total)}"
            self._write(f"\r{line:<72}")
            self._open = True
        elif progress.status != self._last:
            self._write(f"{progress.status}: {_size(total)}\n")

    def close(self) -> None:
        self._end_line()

    def _end_line(self) -> None:
        if self._open:
            self._write("\n")
            self._open = False

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
