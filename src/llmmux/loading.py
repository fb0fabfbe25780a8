"""The one load-and-validate path: `Router.from_config`, the CLI and hot reload all use it.

    loaded = load("./config")              # a folder, an llmmux.yaml, or a dict
    loaded.raise_for_errors()              # ConfigError listing every error, if any
    router = Router(loaded.config)

`load` reads the files into typed objects (config/: the routing settings are parsed there,
once, onto `config.routing.settings`), checks what lies between entries (config/validate.py),
then runs the checks that need a domain's knowledge: the provider types, which read their
options once onto each `ProviderConfig.options`, the prices, and the spelling of tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config.loader import config_from_dict, load_config
from .config.model import Config
from .config.problems import ConfigError, Problems
from .config.validate import cross_check
from .errors import InvalidRequest
from .pricing import check_prices
from .providers.base import ProviderType
from .providers.config_checks import check_providers
from .providers.registry import provider_types
from .tags import check as check_tag


@dataclass(frozen=True, slots=True)
class Loaded:
    """A parsed config and every problem found on the way."""

    config: Config
    problems: Problems

    def raise_for_errors(self) -> Loaded:
        """Raise ConfigError (listing every problem) when there is an error; else return self."""
        if self.problems.errors:
            raise ConfigError(list(self.problems))
        return self


def load(
    source: str | Path | Mapping[str, Any],
    *,
    types: Mapping[str, ProviderType] | None = None,
    env: Mapping[str, str] | None = None,
    require_providers: bool = True,
) -> Loaded:
    """Read and check a config folder, an `llmmux.yaml`, or a dict in the single-file layout.

    `require_providers=False`: a config without providers is not an error (the library's
    `Router.from_config({"providers": {}})` followed by `add_provider`).
    """
    if isinstance(source, Mapping):
        config, problems = config_from_dict(source, env)
    else:
        config, problems = load_config(source, env)
    return check(config, types=types, problems=problems, require_providers=require_providers)


def check(
    config: Config,
    *,
    types: Mapping[str, ProviderType] | None = None,
    problems: Problems | None = None,
    require_providers: bool = True,
) -> Loaded:
    """Every check on an already parsed `config`."""
    problems = problems if problems is not None else Problems()
    check_providers(config, types if types is not None else provider_types(), problems)
    check_prices(config, problems)
    cross_check(config, problems, require_providers=require_providers)
    _check_tags(config, problems)
    return Loaded(config, problems)


def discovered(config: Config) -> Loaded:
    """A config built from what this machine offers (no file): nothing to check but its defaults."""
    return Loaded(config, Problems())


def _check_tags(config: Config, problems: Problems) -> None:
    """Tag routes' tags in the alphabet requests use (`llmmux.tags`), or they could never match."""
    for i, rule in enumerate(config.routing.settings.tag_routes):
        try:
            check_tag(rule.tag, f"tag_routes[{i}].tag")
        except InvalidRequest as exc:
            problems.error(*config.locate(f"tag_routes[{i}].tag"), exc.message)
