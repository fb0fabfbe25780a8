"""Checks across the whole configuration: references between entries, cycles and regexes.

The loader reports what is wrong inside one entry; this module reports what is wrong
between entries (routes, chains, groups and tag routes pointing at names that do not
exist). Checks that need a domain's knowledge (provider types and their options, prices,
tag spelling) live with that domain, and `llmmux.loading` runs them all.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .model import Config
from .problems import Problems


def cross_check(config: Config, problems: Problems | None = None, *, require_providers: bool = True) -> Problems:
    """Add what is wrong between the entries of `config` to `problems`.

    `require_providers=False` accepts a config without providers (a library router that
    gets them from `add_provider`)."""
    problems = problems if problems is not None else Problems()
    _check_routes(config, problems)
    _check_cycles(config, problems)
    _check_groups(config, problems)
    _check_tag_routes(config, problems)
    if require_providers and not config.providers:
        _error(config, problems, "providers", "no providers are configured")
    return problems


def _error(config: Config, problems: Problems, path: str, message: str) -> None:
    problems.error(*config.locate(path), message)


def _warning(config: Config, problems: Problems, path: str, message: str) -> None:
    problems.warning(*config.locate(path), message)


def _known_names(config: Config) -> tuple[set[str], set[str]]:
    models = set(config.routing.exact)
    for pname, provider in config.providers.items():
        for m in provider.model_names():
            models.add(m)
            models.add(f"{pname}/{m}")
    return set(config.providers), models


def name_resolver(config: Config) -> Callable[[str], bool]:
    """Whether a name a route or chain points at is a provider, chain, model or pattern match."""
    providers, models = _known_names(config)
    chains = set(config.routing.chains)
    patterns = [re.compile(p.pattern) for p in config.routing.patterns if _valid_regex(p.pattern)]

    def resolvable(name: str) -> bool:
        return (
            name in providers
            or name in chains
            or name in models
            or any(rx.search(name) for rx in patterns)
            or (name.partition("/")[0] in providers and "/" in name)
        )

    return resolvable


def _check_routes(config: Config, problems: Problems) -> None:
    providers, _ = _known_names(config)
    resolvable = name_resolver(config)

    for public, route in config.routing.exact.items():
        path = f"exact_matches.{public}"
        if route.provider not in providers:
            _error(config, problems, f"{path}.provider", f"unknown provider {route.provider!r}")
        for name in route.fallback:
            if not resolvable(name):
                _error(config, problems, f"{path}.fallback", f"{name!r} is not a provider, chain or model")
        if public in providers:
            _warning(config, problems, path, "this public name is also a provider name")
    for i, pattern in enumerate(config.routing.patterns):
        path = f"patterns[{i}]"
        if not _valid_regex(pattern.pattern):
            _error(config, problems, f"{path}.pattern", f"invalid regular expression: {_regex_error(pattern.pattern)}")
        if pattern.provider not in providers:
            _error(config, problems, f"{path}.provider", f"unknown provider {pattern.provider!r}")
        for name in pattern.fallback:
            if not resolvable(name):
                _error(config, problems, f"{path}.fallback", f"{name!r} is not a provider, chain or model")
    for name, chain in config.routing.chains.items():
        for j, step in enumerate(chain.chain):
            if not resolvable(step):
                _error(
                    config,
                    problems,
                    f"fallback_chains.{name}.chain[{j}]",
                    f"{step!r} is not a provider, chain or model",
                )


def _check_groups(config: Config, problems: Problems) -> None:
    """Every provider a capability, redundant group or size band names must exist."""
    settings = config.routing.settings

    def check(path: str, name: str | None) -> None:
        if name is not None and name not in config.providers:
            _error(config, problems, path, f"unknown provider {name!r}")

    for cap in settings.capabilities.values():
        check(f"capabilities.{cap.name}.provider", cap.provider)
    for group in settings.redundant.values():
        for i, member in enumerate(group.members):
            check(f"redundant_models.{group.name}.providers[{i}].provider", member.provider)
    for i, band in enumerate(settings.size_bands):
        check(f"model_size_routing[{i}].provider", band.provider)


def _check_tag_routes(config: Config, problems: Problems) -> None:
    """A tag route must name something that routes: found at load, not by the first tagged request."""
    settings = config.routing.settings
    resolvable = name_resolver(config)
    for i, rule in enumerate(settings.tag_routes):
        if not (resolvable(rule.to) or settings.names_group(rule.to)):
            known = sorted({*config.routing.exact, *settings.group_names()})[:10]
            _error(
                config,
                problems,
                f"tag_routes[{i}].to",
                f"{rule.to!r} is not a route, group, capability, provider or model"
                + (f" (known: {', '.join(known)})" if known else ""),
            )


def _check_cycles(config: Config, problems: Problems) -> None:
    """A model whose fallbacks lead back to itself is a mistake even though routing survives it."""
    graph: dict[str, list[str]] = {}
    for public, route in config.routing.exact.items():
        graph[public] = list(route.fallback)
    for name, chain in config.routing.chains.items():
        graph.setdefault(name, []).extend(chain.chain)
    reported: set[frozenset[str]] = set()
    for start in graph:
        cycle = _find_cycle(start, graph)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            _error(
                config,
                problems,
                f"exact_matches.{start}.fallback",
                "fallback cycle: " + " -> ".join([*cycle, cycle[0]]),
            )


def _find_cycle(start: str, graph: dict[str, list[str]]) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, []):
            if nxt == start:
                return path
            if nxt not in path and nxt in graph:
                stack.append((nxt, [*path, nxt]))
    return None


def _valid_regex(pattern: str) -> bool:
    return _regex_error(pattern) is None


def _regex_error(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None
