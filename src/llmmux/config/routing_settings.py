"""Every routing setting, read once when the config loads and carried on `Config.routing.settings`.

`parse_routing_settings` is the one place the routing sections (`routing_strategy:`,
`capabilities:`, `redundant_models:`, `model_size_routing:`, `health_checks:`,
`rate_limit_settings:`, `cache:`, `tag_routes:`) are parsed; problems name the key path, and
a wrong value keeps the default. Routing, health, limits and the cache read the typed result;
what lies between these settings and the rest of the config (a group naming an unknown
provider, a tag route to nothing) is checked by `validate.cross_check`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .cache_settings import CacheConfig, parse_config
from .fields import FieldReader
from .health_checks import HealthConfig, parse_health
from .provider_limits import LimitsConfig, parse_limits
from .route_groups import CAPABILITY_PREFIX, Capability, RedundantGroup, parse_capabilities, parse_redundant
from .route_policy import DEFAULT_POLICY, POLICY_KEYS, RoutePolicy, policy_changes
from .size_bands import SizeBand, band_index, parse_bands, parse_size
from .tag_routes import SECTION as TAG_ROUTES
from .tag_routes import TagRoute, parse_tag_routes

if TYPE_CHECKING:
    from .model import ProviderConfig, StateConfig

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
    tag_routes: tuple[TagRoute, ...] = ()

    @property
    def caches(self) -> bool:
        """Does any route use the response cache?"""
        return self.default.cache is not None or any(r.get("cache") is not None for r in self.routes.values())

    def with_providers(self, providers: Mapping[str, ProviderConfig]) -> RoutingSettings:
        """These settings for another set of providers (their own `max_concurrency` feeds the limits)."""
        return dataclasses.replace(self, limits=self.limits.with_providers(providers))

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


def parse_routing_settings(
    sections: Mapping[str, Any],
    providers: Mapping[str, ProviderConfig],
    state: StateConfig,
    reader_for: Callable[[str], FieldReader],
) -> RoutingSettings:
    """Parse every routing section (raw, by top-level key); `reader_for(key)` reports the
    problems of one section against the file it came from."""
    base = _parse_strategy(sections.get(SECTION), reader_for(SECTION))
    return dataclasses.replace(
        base,
        capabilities=parse_capabilities(sections.get("capabilities"), reader_for("capabilities")),
        redundant=parse_redundant(sections.get("redundant_models"), reader_for("redundant_models")),
        size_bands=parse_bands(sections.get("model_size_routing"), reader_for("model_size_routing")),
        health=parse_health(sections.get("health_checks"), providers.keys(), reader_for("health_checks")),
        limits=parse_limits(sections.get("rate_limit_settings"), providers, reader_for("rate_limit_settings")),
        cache=parse_config(sections.get("cache"), state.client_url(), reader_for("cache")),
        tag_routes=parse_tag_routes(sections.get(TAG_ROUTES), reader_for(TAG_ROUTES)),
    )


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
