"""The `llmmux` command: one module per command group."""

from __future__ import annotations

import click

from .. import __version__
from .audit import audit
from .cache import cache
from .examples import attach_examples
from .health import health
from .keys import keys
from .logs import logs
from .ollama_models import pull, rm
from .providers import providers
from .ps import ps
from .reload import reload
from .routes import models, route
from .serve import serve
from .status import status
from .teams import teams
from .usage import usage
from .validate import validate


@click.group()
@click.version_option(__version__, prog_name="llmmux")
def main() -> None:
    """One endpoint and one library in front of every LLM backend."""


main.add_command(serve)
main.add_command(validate)
main.add_command(models)
main.add_command(route)
main.add_command(keys)
main.add_command(usage)
main.add_command(teams)
main.add_command(audit)
main.add_command(health)
models.add_command(pull)
models.add_command(rm)
main.add_command(providers)
main.add_command(ps)
main.add_command(logs)
main.add_command(status)
main.add_command(reload)
main.add_command(cache)
attach_examples(main)

__all__ = ["main"]
