"""The route table: public names to ordered candidates, built once when config loads.

A request for an exact name, an alias, a provider's model, `provider/model`, a redundant
model or `capability:NAME` is a dict lookup; only pattern and size routes are matched by
regex, and their results are cached. Every candidate carries what routing needs to know
about it (tier, weight, context window, size, quality rank), so requests do not
look anything up.

Tiers keep fallbacks quality-preserving: tier 0 holds the name's own candidates (the
providers of a model, the preferred models of a capability), each fallback step the next
tier. Strategies reorder within a tier, never across.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..config.model import Config, FallbackChain, PatternRoute
from ..config.route_groups import CAPABILITY_PREFIX, Capability, RedundantGroup
from ..config.route_policy import DEFAULT_POLICY, RoutePolicy
from ..config.size_bands import band_index, parse_size
from ..errors import MAX_NAME_CHARS, ModelNotFound
from ..pricing import Pricing
from ..providers.base import Provider

PATTERN_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Candidate:
    """One provider and upstream model a request may go to, with what routing knows of it."""

    provider: Provider
    model: str
    tier: int = 0
    weight: float = 1.0
    context_length: int | None = field(default=None, compare=False)
    size_b: float | None = field(default=None, compare=False)
    quality: int | None = field(default=None, compare=False)
    local: bool | None = field(default=None, compare=False)  # provider.is_local, worked out once

    def __post_init__(self) -> None:
        if self.local is None:
            object.__setattr__(self, "local", self.provider.is_local)

    @property
    def key(self) -> tuple[str, str]:
        return self.provider.name, self.model

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.model}"


@dataclass(slots=True)
class Route:
    """The ordered candidates for one public name, how to pick among them, and why each is there."""

    public: str
    candidates: list[Candidate]
    retry_attempts: int = 0
    retry_delay_ms: int = 250
    source: str = ""
    why: list[str] = field(default_factory=list)
    policy: RoutePolicy = DEFAULT_POLICY
    # Whether any candidate has a known context window (else the context check is skipped).
    context_aware: bool = False
    strict: bool = False  # refuse parameters a candidate cannot honour (see llmmux.params)
    pass_unchecked_params: bool = False  # skip the range checks of llmmux.param_values


class RouteTable:
    def __init__(
        self,
        config: Config,
        providers: dict[str, Provider],
        skipped: Mapping[str, str] | None = None,
        pricing: Pricing | None = None,
    ) -> None:
        self._config = config
        self._providers = providers
        # The router's catalog, so routing ranks by the prices billing charges.
        self.pricing = pricing if pricing is not None else Pricing(providers)
        self.settings = config.routing.settings
        self._chains = config.routing.chains
        self._patterns = [(re.compile(p.pattern), p) for p in config.routing.patterns if _compiles(p.pattern)]
        self._pattern_cache: dict[str, Route | None] = {}
        self._skipped = dict(skipped or {})
        self._entries = {(pname, m.name): m for pname, p in config.providers.items() for m in p.models}
        self._primaries = self._collect_primaries()
        self._building: list[str] = []
        routes = {name: self._named_route(name) for name in self._primaries}
        self._routes = {name: r for name, r in routes.items() if r.candidates}
        for name, capability in self.settings.capabilities.items():
            route = self._capability_route(capability)
            if route.candidates:
                self._routes[CAPABILITY_PREFIX + name] = route
        self._owners = self._collect_owners()

    # -- lookups --

    def resolve(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is not None:
            return route
        if len(name) > MAX_NAME_CHARS:
            raise ModelNotFound(name)  # before the pattern cache keeps a client's megabytes as a key
        if name in self._pattern_cache:
            cached = self._pattern_cache[name]
        else:
            cached = self._resolve_dynamic(name)
            if len(self._pattern_cache) >= PATTERN_CACHE_SIZE:
                self._pattern_cache.clear()
            self._pattern_cache[name] = cached
        if cached is None:
            raise ModelNotFound(name, self.suggest(name))
        return cached

    def knows(self, name: str) -> bool:
        """Whether `name` resolves to a route (without raising)."""
        try:
            self.resolve(name)
        except ModelNotFound:
            return False
        return True

    def names_of(self, route: Route, candidate: Candidate) -> list[str]:
        """The names a candidate goes by, which a key's allow-list is matched against.

        Its `provider/model`; every configured name it is a first choice of (not a fallback);
        and the name this request asked for, when the candidate is a first choice of it.
        So a key allowed `gpt-4o` reaches `gpt-4o`'s own providers by any route, capability
        or pin, but never a fallback model of `gpt-4o` that its list does not name.
        """
        names = [f"{candidate.provider.name}/{candidate.model}", *self._owners.get(candidate.key, ())]
        if candidate.tier == 0:
            names.append(route.public)
        return names

    def _collect_owners(self) -> dict[tuple[str, str], list[str]]:
        owners: dict[tuple[str, str], list[str]] = {}
        for name, route in self._routes.items():
            for c in route.candidates:
                if c.tier == 0:
                    owners.setdefault(c.key, []).append(name)
        return owners

    def capabilities(self) -> list[str]:
        """The capabilities a request can ask for (those with at least one candidate)."""
        return [n.removeprefix(CAPABILITY_PREFIX) for n in self._routes if n.startswith(CAPABILITY_PREFIX)]

    def public_names(self) -> list[str]:
        """Every routable name, without the `provider/model` spellings."""
        return [name for name, route in self._routes.items() if not route.source.startswith("provider/model")]

    def routes(self) -> Mapping[str, Route]:
        return self._routes

    def suggest(self, name: str) -> list[str]:
        if len(name) > MAX_NAME_CHARS:
            return []  # difflib's cost grows with the name's length, and no route name is that long
        names = list(self._routes)
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if not close:
            lowered = name.lower()
            close = [n for n in names if lowered in n.lower() or n.lower() in lowered][:3]
        return close

    # -- candidates --

    def _candidate(self, provider: Provider, model: str, tier: int = 0, weight: float = 1.0) -> Candidate:
        entry = self._entries.get((provider.name, model))
        ranks = self.settings.quality_ranks
        quality = ranks.get(f"{provider.name}/{model}", ranks.get(model))
        if quality is None and entry is not None:
            quality = _int(entry.extra.get("quality_rank", entry.extra.get("quality")))
        return Candidate(
            provider,
            model,
            tier,
            weight,
            context_length=entry.context_length if entry else None,
            size_b=parse_size(entry.size if entry and entry.size else model),
            quality=quality,
            local=provider.is_local,
        )

    # -- building --

    def _collect_primaries(self) -> dict[str, _Primary]:
        primaries: dict[str, _Primary] = {}
        for pname, pconfig in self._config.providers.items():
            provider = self._providers.get(pname)
            for model in pconfig.model_names():
                entry = primaries.setdefault(model, _Primary([], model, pname, f"model listed by provider {pname}"))
                if provider is not None:
                    entry.candidates.append(self._candidate(provider, model))
                    primaries[f"{pname}/{model}"] = _Primary(
                        [self._candidate(provider, model)], model, pname, "provider/model name"
                    )
        for primary in primaries.values():
            self._order_by_size_band(primary)
        for public, exact in self._config.routing.exact.items():
            provider = self._providers.get(exact.provider)
            model = exact.model or public
            candidates = [self._candidate(provider, model)] if provider else []
            primaries[public] = _Primary(
                candidates,
                model,
                exact.provider,
                "exact match",
                exact.fallback,
                exact.no_fallback,
                exact.retry_attempts,
                exact.retry_delay_ms,
                strict=exact.strict,
                pass_unchecked_params=exact.pass_unchecked_params,
            )
        for name, group in self.settings.redundant.items():
            primaries[name] = self._redundant_primary(group, primaries.get(name))
        return primaries

    def _order_by_size_band(self, primary: _Primary) -> None:
        """A model served by several providers goes first to its size band's provider."""
        bands = self.settings.size_bands
        if len(primary.candidates) < 2 or not bands:
            return
        index = band_index(bands, primary.candidates[0].size_b)
        if index is not None:
            preferred = bands[index].provider
            primary.candidates.sort(key=lambda c: c.provider.name != preferred)

    def _redundant_primary(self, group: RedundantGroup, existing: _Primary | None) -> _Primary:
        candidates = []
        for member in group.members:
            provider = self._providers.get(member.provider)
            if provider is not None and member.weight > 0:
                candidates.append(self._candidate(provider, member.model or group.name, 0, member.weight))
        fallback, none = group.fallback, group.no_fallback
        if existing is not None and existing.source == "exact match" and not fallback and not none:
            fallback, none = existing.fallback, existing.no_fallback
        strict = existing.strict if existing is not None else False
        unchecked = existing.pass_unchecked_params if existing is not None else False
        return _Primary(
            candidates,
            group.name,
            group.members[0].provider,
            "redundant_models (weighted)",
            fallback,
            none,
            strategy=group.strategy,
            strict=strict,
            pass_unchecked_params=unchecked,
        )

    def _named_route(self, name: str) -> Route:
        """The route of a configured name; a name met again while building it is a cycle, skipped."""
        self._building.append(name)
        try:
            return self._route(name, self._primaries[name])
        finally:
            self._building.pop()

    def _route(self, public: str, primary: _Primary) -> Route:
        route = Route(
            public,
            [],
            primary.retry_attempts,
            primary.retry_delay_ms,
            primary.source,
            policy=self.settings.policy_for(public, primary.strategy),
            strict=primary.strict,
            pass_unchecked_params=primary.pass_unchecked_params,
        )
        for c in primary.candidates:
            self._add(route, c, f"{primary.source}: {c}" + (f" (weight {c.weight:g})" if primary.strategy else ""))
        if not primary.candidates:
            reason = self._skipped_reason(primary.provider)
            route.why.append(f"{primary.source}: provider {primary.provider} skipped ({reason})")
        if primary.no_fallback:
            route.why.append("fallback: none (fail rather than degrade)")
            return _finish(route)
        fallback = primary.fallback
        chain = self._chain_for(public, primary.provider, bool(fallback))
        if chain is not None:
            fallback = [*fallback, *chain.chain]
            route.retry_attempts = max(route.retry_attempts, chain.retry_attempts)
            route.retry_delay_ms = chain.retry_delay_ms if chain.retry_attempts else route.retry_delay_ms
        self._expand(route, fallback, primary.model, set(), [0])
        return _finish(route)

    def _capability_route(self, capability: Capability) -> Route:
        public = CAPABILITY_PREFIX + capability.name
        route = Route(
            public,
            [],
            source=f"capability {capability.name}",
            policy=self.settings.policy_for(public, capability.strategy),
        )
        models = [self._model_route(m, route) for m in capability.models]
        if capability.provider is not None and not capability.models:
            self._provider_models(route, capability.provider)
        for name, model_route in zip(capability.models, models):
            for c in model_route.candidates if model_route else []:
                if c.tier == 0:
                    self._add(route, c, f"preferred model {name}: {c}")
        if capability.no_fallback:
            route.why.append("fallback: none (fail rather than degrade)")
            return _finish(route)
        for name, model_route in zip(capability.models, models):
            for c in model_route.candidates if model_route else []:
                if c.tier > 0:
                    self._add(route, c, f"fallback of {name}: {c} (tier {c.tier})")
        tier = [max((c.tier for c in route.candidates), default=0)]
        self._expand(route, capability.fallback, capability.models[0] if capability.models else "", set(), tier)
        return _finish(route)

    def _provider_models(self, route: Route, name: str) -> None:
        """Every model a provider lists (a capability given by provider alone)."""
        provider = self._providers.get(name)
        if provider is None:
            route.why.append(f"provider {name}: skipped ({self._skipped_reason(name)})")
            return
        for model in self._config.providers[name].model_names():
            self._add(route, self._candidate(provider, model), f"model of provider {name}: {model}")

    def _model_route(self, name: str, into: Route) -> Route | None:
        route = self._routes.get(name) or self._resolve_dynamic(name)
        if route is None:
            into.why.append(f"preferred model {name}: skipped, not routable")
        return route

    def _skipped_reason(self, provider: str) -> str:
        if provider not in self._config.providers:
            return "unknown provider"
        return self._skipped.get(provider, "disabled or unsupported")

    def _chain_for(self, public: str, provider: str, has_explicit: bool) -> FallbackChain | None:
        chain = self._chains.get(public)
        if chain is not None:
            return chain
        if has_explicit:
            return None
        for candidate in self._chains.values():
            if candidate.chain and candidate.chain[0] == provider:
                return candidate
        return None

    def _expand(self, route: Route, names: list[str], model: str, seen_chains: set[str], tier: list[int]) -> None:
        """Add fallbacks in order, each step one tier further from the primary."""
        for name in names:
            if name in self._chains and name not in seen_chains and name not in self._config.providers:
                seen_chains.add(name)
                self._expand(route, self._chains[name].chain, model, seen_chains, tier)
                continue
            tier[0] += 1
            if name in self._config.providers:
                provider = self._providers.get(name)
                if provider is None:
                    route.why.append(f"fallback {name}: skipped, provider disabled or unsupported")
                else:
                    self._add(
                        route,
                        self._candidate(provider, model, tier[0]),
                        f"fallback to provider {name} with the same model (tier {tier[0]})",
                    )
            elif name in self._primaries:
                if name in self._building:
                    route.why.append(f"fallback {name}: skipped, it falls back to this route (a cycle)")
                    continue
                # The model's whole route, its own fallbacks included, each a tier further on.
                base, named = tier[0], self._named_route(name)
                for c in named.candidates:
                    self._add(route, _retier(c, base + c.tier), f"fallback to model {name}: {c} (tier {base + c.tier})")
                tier[0] = max([base, *(base + c.tier for c in named.candidates)])
            else:
                dynamic = self._resolve_dynamic(name, with_fallbacks=False)
                if dynamic is None:
                    route.why.append(f"fallback {name}: skipped, no provider, chain or model has that name")
                for c in dynamic.candidates if dynamic else []:
                    self._add(route, _retier(c, tier[0]), f"fallback to model {name}: {c} (tier {tier[0]})")

    @staticmethod
    def _add(route: Route, candidate: Candidate, why: str) -> None:
        if any(c.key == candidate.key for c in route.candidates):
            return
        route.candidates.append(candidate)
        route.why.append(why)

    def _resolve_dynamic(self, name: str, with_fallbacks: bool = True) -> Route | None:
        provider_name, _, model = name.partition("/")
        provider = self._providers.get(provider_name) if model else None
        if provider is not None:
            return self._route(
                name,
                _Primary(
                    [self._candidate(provider, model)],
                    model,
                    provider_name,
                    "provider/model name",
                    no_fallback=not with_fallbacks,
                ),
            )
        for regex, pattern in self._patterns:
            match = regex.search(name)
            if match is not None:
                return self._pattern_route(name, match, pattern, with_fallbacks)
        return self._size_route(name, with_fallbacks)

    def _pattern_route(
        self, name: str, match: re.Match[str], pattern: PatternRoute, with_fallbacks: bool
    ) -> Route | None:
        provider = self._providers.get(pattern.provider)
        model = match.expand(pattern.model) if pattern.model else name
        primary = _Primary(
            [self._candidate(provider, model)] if provider else [],
            model,
            pattern.provider,
            f"pattern {pattern.pattern!r}",
            pattern.fallback,
            pattern.no_fallback or not with_fallbacks,
            strict=pattern.strict,
            pass_unchecked_params=pattern.pass_unchecked_params,
        )
        route = self._route(name, primary)
        return route if route.candidates else None

    def _size_route(self, name: str, with_fallbacks: bool) -> Route | None:
        """An unlisted model whose name gives its size goes to that size band's provider."""
        bands = self.settings.size_bands
        size = parse_size(name) if bands else None
        index = band_index(bands, size)
        if index is None:
            return None
        band = bands[index]
        provider = self._providers.get(band.provider)
        if provider is None:
            return None
        primary = _Primary(
            [self._candidate(provider, name)],
            name,
            band.provider,
            f"model_size_routing {band.label!r} ({size:g}B)",
            no_fallback=not with_fallbacks,
        )
        return self._route(name, primary)


@dataclass(slots=True)
class _Primary:
    """What a name maps to before fallbacks: its first candidates and its fallback settings."""

    candidates: list[Candidate]
    model: str
    provider: str
    source: str
    fallback: list[str] = field(default_factory=list)
    no_fallback: bool = False
    retry_attempts: int = 0
    retry_delay_ms: int = 250
    strategy: str | None = None
    strict: bool = False
    pass_unchecked_params: bool = False


def _retier(candidate: Candidate, tier: int) -> Candidate:
    return dataclasses.replace(candidate, tier=tier)


def _finish(route: Route) -> Route:
    route.context_aware = any(c.context_length for c in route.candidates)
    return route


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True
