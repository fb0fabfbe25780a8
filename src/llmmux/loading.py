"""The one load-and-validate path: `Router.from_config`, the CLI and hot reload all use it.

    loaded = load("./config")              # a folder, an llmmux.yaml, or a dict
    loaded.raise_for_errors()              # ConfigError listing every error, if any
    router = Router(loaded.config, settings=loaded.settings)

`load` reads the files (config/), checks what lies between entries (config/validate.py),
then runs the checks that need a domain's knowledge: the provider types and their
options, the prices, and the routing sections, which are parsed here once into the typed
`RoutingSettings` that routing, health, limits and the cache read.
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
from .pricing import check_prices
from .providers.base import ProviderType
from .providers.config_checks import check_providers
from .providers.registry import provider_types
from .routing.strategy_settings import RoutingSettings, check_tag_routes, load_settings


@dataclass(frozen=True, slots=True)
class Loaded:
    """A parsed config, its typed routing settings, and every problem found on the way."""

    config: Config
    settings: RoutingSettings
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
    """Every check on an already parsed `config`, and its routing settings parsed once."""
    problems = problems if problems is not None else Problems()
    check_providers(config, types if types is not None else provider_types(), problems)
    check_prices(config, problems)
    cross_check(config, problems, require_providers=require_providers)
    settings = load_settings(config, problems)
    check_tag_routes(config, settings, problems)
    return Loaded(config, settings, problems)


def discovered(config: Config) -> Loaded:
    """A config built from what this machine offers (no file): nothing to check but its defaults."""
    return Loaded(config, load_settings(config), Problems())
