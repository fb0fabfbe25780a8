"""Checks across the whole configuration: references, cycles, regexes, URLs and keys.

The loader reports what is wrong inside one entry; this module reports what is wrong
between entries, which needs the registry of provider types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..local.launch import launch_problems
from ..pricing import parse_price
from ..providers.base import ProviderType
from .fields import FieldReader
from .model import Config
from .problems import Problems


def validate(config: Config, types: Mapping[str, ProviderType], problems: Problems | None = None) -> Problems:
    problems = problems if problems is not None else Problems()
    source = config.source
    _check_providers(config, types, problems)
    _check_pricing(config, problems)
    _check_routes(config, problems)
    _check_cycles(config, problems)
    if not config.providers:
        problems.error(source, "providers", "no providers are configured")
    # The routing sections (strategies, capabilities, health checks, limits) parse themselves.
    from ..routing.settings import load_settings

    load_settings(config, problems)
    return problems


def _check_providers(config: Config, types: Mapping[str, ProviderType], problems: Problems) -> None:
    for name, provider in config.providers.items():
        path = f"providers.{name}"
        kind = types.get(provider.type)
        if kind is None:
            problems.warning(
                config.source,
                f"{path}.type",
                f"provider type {provider.type!r} is not supported; serve will skip this provider "
                f"(supported: {', '.join(sorted(types))})",
            )
            continue
        for key, message in kind.check_config(provider) if kind.check_config else []:
            problems.error(config.source, f"{path}.{key}" if key else path, message)
        if not kind.in_process:  # in-process types read their keys in `check_config`
            kind.factory.options_type.from_mapping(provider.extra, FieldReader(config.source, problems), path)
        if "launch" in provider.extra:  # a managed server: its URL comes from its port
            for key, message in launch_problems(provider):
                problems.error(config.source, f"{path}.launch.{key}" if key else f"{path}.launch", message)
            continue
        if kind.in_process:
            continue
        url = provider.base_url or kind.base_url
        parts = urlsplit(url)
        if not url:
            problems.error(config.source, f"{path}.base_url", "expected a base URL such as http://127.0.0.1:8000/v1")
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            problems.error(config.source, f"{path}.base_url", f"expected an http(s) URL with a host, got {url!r}")
        known = kind.factory.options_type.keys() | kind.options
        for key in provider.extra:
            if key not in known:
                problems.warning(
                    config.source,
                    f"{path}.{key}",
                    f"unknown provider key for type {provider.type!r}, kept but not used",
                )
        needs_key = provider.requires_api_key if provider.requires_api_key is not None else kind.cloud
        has_key = (
            provider.api_key or (not provider.env_var and kind.key_from_env()) or kind.has_credential_option(provider)
        )
        if needs_key and not has_key and provider.routable:
            var = provider.env_var or kind.env_var
            hint = f"set {var}" if var else "set api_key or env_var"
            problems.warning(config.source, path, f"no API key for this cloud provider: {hint}")


def _check_pricing(config: Config, problems: Problems) -> None:
    for name, provider in config.providers.items():
        for i, model in enumerate(provider.models):
            if "pricing" in model.extra:
                try:
                    parse_price(model.extra["pricing"])
                except ValueError as exc:
                    problems.error(config.source, f"providers.{name}.models[{i}].pricing", str(exc))


def _known_names(config: Config) -> tuple[set[str], set[str]]:
    models = set(config.routing.exact)
    for pname, provider in config.providers.items():
        for m in provider.model_names():
            models.add(m)
            models.add(f"{pname}/{m}")
    return set(config.providers), models


def _check_routes(config: Config, problems: Problems) -> None:
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

    for public, route in config.routing.exact.items():
        path = f"exact_matches.{public}"
        if route.provider not in providers:
            problems.error(config.source, f"{path}.provider", f"unknown provider {route.provider!r}")
        for name in route.fallback:
            if not resolvable(name):
                problems.error(config.source, f"{path}.fallback", f"{name!r} is not a provider, chain or model")
        if public in providers:
            problems.warning(config.source, path, "this public name is also a provider name")
    for i, pattern in enumerate(config.routing.patterns):
        path = f"patterns[{i}]"
        if not _valid_regex(pattern.pattern):
            problems.error(
                config.source, f"{path}.pattern", f"invalid regular expression: {_regex_error(pattern.pattern)}"
            )
        if pattern.provider not in providers:
            problems.error(config.source, f"{path}.provider", f"unknown provider {pattern.provider!r}")
        for name in pattern.fallback:
            if not resolvable(name):
                problems.error(config.source, f"{path}.fallback", f"{name!r} is not a provider, chain or model")
    for name, chain in config.routing.chains.items():
        for j, step in enumerate(chain.chain):
            if not resolvable(step):
                problems.error(
                    config.source, f"fallback_chains.{name}.chain[{j}]", f"{step!r} is not a provider, chain or model"
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
            problems.error(
                config.source, f"exact_matches.{start}.fallback", "fallback cycle: " + " -> ".join([*cycle, cycle[0]])
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
