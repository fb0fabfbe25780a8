"""Every routing setting, read once from the config's sections when it loads.

`load_settings` is the one place the raw sections (`routing_strategy:`, `capabilities:`,
`redundant_models:`, `model_size_routing:`, `health_checks:`, `rate_limit_settings:`) are
parsed; problems name the key path, and a wrong value keeps the default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..cache.cache_settings import CacheConfig, parse_config
from ..config.fields import FieldReader
from ..config.model import Config
from ..config.problems import Problems
from ..config.validate import name_resolver
from ..health.thresholds import HealthConfig, parse_health
from ..limits.provider_limits import LimitsConfig, parse_limits
from ..shared.state_config import redis_url
from .groups import CAPABILITY_PREFIX, Capability, RedundantGroup, parse_capabilities, parse_redundant
from .route_policy import DEFAULT_POLICY, POLICY_KEYS, RoutePolicy, policy_changes
from .sizes import SizeBand, band_index, parse_bands, parse_size
from .tag_routes import SECTION as TAG_ROUTES
from .tag_routes import TagRoute, parse_tag_routes

SECTION = "routing_strategy"
DEFAULT_STALL_TIMEOUT_S = 60.0
GLOBAL_KEYS = (
    "default",
    "routes",
    "quality_ranks",
    "debug_header",
    "first_token_timeout_seconds",
    "stall_timeout_seconds",
    *POLICY_KEYS,
)


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    default: RoutePolicy = DEFAULT_POLICY
    routes: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    quality_ranks: Mapping[str, int] = field(default_factory=dict)
    debug_header: bool = False
    first_token_timeout_s: float | None = None
    stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S
    capabilities: Mapping[str, Capability] = field(default_factory=dict)
    redundant: Mapping[str, RedundantGroup] = field(default_factory=dict)
    size_bands: list[SizeBand] = field(default_factory=list)
    health: HealthConfig = field(default_factory=HealthConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)

    @property
    def caches(self) -> bool:
        """Does any route use the response cache?"""
        return self.default.cache is not None or any(r.get("cache") is not None for r in self.routes.values())

    tag_routes: tuple[TagRoute, ...] = ()

    def group_names(self) -> list[str]:
        """The names the routing sections themselves define: redundant groups and `capability:NAME`."""
        return [*self.redundant, *(CAPABILITY_PREFIX + name for name in self.capabilities)]

    def names_group(self, name: str) -> bool:
        """Whether `name` routes through a group, a capability or a size band (not a configured model)."""
        if name in self.redundant:
            return True
        if name.startswith(CAPABILITY_PREFIX):
            return name.removeprefix(CAPABILITY_PREFIX) in self.capabilities
        return bool(self.size_bands) and band_index(self.size_bands, parse_size(name)) is not None

    def policy_for(self, public: str, group_strategy: str | None = None) -> RoutePolicy:
        """A route's own settings, over its group's strategy, over the defaults."""
        policy = self.default
        if group_strategy is not None:
            policy = dataclasses.replace(policy, strategy=group_strategy)
        own = self.routes.get(public)
        return dataclasses.replace(policy, **own) if own else policy


def load_settings(config: Config, problems: Problems | None = None) -> RoutingSettings:
    """Parse every routing section of `config`; problems are added to `problems`."""
    reader = FieldReader(config.source, problems if problems is not None else Problems())
    sections = config.routing.sections
    base = _parse_strategy(sections.get(SECTION), reader)
    settings = dataclasses.replace(
        base,
        capabilities=parse_capabilities(sections.get("capabilities"), reader),
        redundant=parse_redundant(sections.get("redundant_models"), reader),
        size_bands=parse_bands(sections.get("model_size_routing"), reader),
        health=parse_health(sections.get("health_checks"), config.providers.keys(), reader),
        limits=parse_limits(sections.get("rate_limit_settings"), config.providers, reader),
        cache=parse_config(sections.get("cache"), redis_url(config.state), reader),
        tag_routes=parse_tag_routes(sections.get(TAG_ROUTES), reader),
    )
    _check_providers(settings, config, reader)
    return settings


def _check_providers(settings: RoutingSettings, config: Config, reader: FieldReader) -> None:
    """Every provider a group names must exist."""
    known = config.providers

    def check(path: str, name: str | None) -> None:
        if name is not None and name not in known:
            reader.error(path, f"unknown provider {name!r}")

    for cap in settings.capabilities.values():
        check(f"capabilities.{cap.name}.provider", cap.provider)
    for group in settings.redundant.values():
        for i, member in enumerate(group.members):
            check(f"redundant_models.{group.name}.providers[{i}].provider", member.provider)
    for i, band in enumerate(settings.size_bands):
        check(f"model_size_routing[{i}].provider", band.provider)


def _parse_strategy(section: Any, reader: FieldReader) -> RoutingSettings:
    if section is None:
        return RoutingSettings()
    if isinstance(section, str):
        section = {"default": section}
    entry = reader.mapping(SECTION, section)
    if entry is None:
        return RoutingSettings()
    reader.unknown(SECTION, entry, GLOBAL_KEYS)
    default_raw = entry.get("default")
    changes = policy_changes({k: entry[k] for k in POLICY_KEYS if k in entry}, SECTION, reader)
    if default_raw is not None:
        changes.update(policy_changes(default_raw, f"{SECTION}.default", reader))
    default = dataclasses.replace(DEFAULT_POLICY, **changes)
    routes = {
        str(name): policy_changes(raw, f"{SECTION}.routes.{name}", reader)
        for name, raw in (reader.mapping(f"{SECTION}.routes", entry.get("routes")) or {}).items()
    }
    return RoutingSettings(
        default=default,
        routes=routes,
        quality_ranks=_ranks(entry.get("quality_ranks"), reader),
        debug_header=reader.field(entry, SECTION, "debug_header", reader.boolean, False),
        first_token_timeout_s=_seconds(entry, "first_token_timeout_seconds", None, reader),
        stall_timeout_s=_seconds(entry, "stall_timeout_seconds", DEFAULT_STALL_TIMEOUT_S, reader),
    )


def _ranks(raw: Any, reader: FieldReader) -> dict[str, int]:
    ranks = {}
    for model, rank in (reader.mapping(f"{SECTION}.quality_ranks", raw) or {}).items():
        value = reader.integer(f"{SECTION}.quality_ranks.{model}", rank, minimum=1)
        if value is not None:
            ranks[str(model)] = value
    return ranks


def _seconds(entry: dict[str, Any], key: str, default: float | None, reader: FieldReader) -> float | None:
    """Positive seconds; an explicit null turns the deadline off."""
    if key in entry and entry[key] is None:
        return None
    return reader.field(entry, SECTION, key, lambda p, v: reader.number(p, v, positive=True), default)


def check_tag_routes(config: Config, settings: RoutingSettings, problems: Problems) -> None:
    """A tag route must name something that routes: found at load, not by the first tagged request."""
    resolvable = name_resolver(config)
    for i, rule in enumerate(settings.tag_routes):
        if not (resolvable(rule.to) or settings.names_group(rule.to)):
            known = sorted({*config.routing.exact, *settings.group_names()})[:10]
            problems.error(
                config.source,
                f"tag_routes[{i}].to",
                f"{rule.to!r} is not a route, group, capability, provider or model"
                + (f" (known: {', '.join(known)})" if known else ""),
            )
