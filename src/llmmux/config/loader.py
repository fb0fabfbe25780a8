"""Reads a config folder (`providers.yaml` + `model-mappings.yaml`) or one `llmmux.yaml`.

Parsing never crashes on what users already keep: unknown keys are kept and reported as
warnings, wrong types as errors naming the file and the key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .env import interpolate, lookup
from .fields import FieldReader
from .launch import parse_launch
from .litellm import from_litellm, is_litellm
from .model import (
    DEFAULT_RETRY_DELAY_MS,
    Config,
    ExactRoute,
    FallbackChain,
    ModelEntry,
    PatternRoute,
    ProviderConfig,
    Secret,
    ServerConfig,
)
from .problems import ConfigError, Problems
from .route_groups import parse_fallback
from .routing_settings import parse_routing_settings
from .sections import SECTIONS, parse_section, set_database_url

PROVIDERS_FILE = "providers.yaml"
MAPPINGS_FILE = "model-mappings.yaml"
SINGLE_FILE = "llmmux.yaml"

PROVIDER_KEYS = frozenset(
    [
        "type",
        "base_url",
        "api_key",
        "env_var",
        "status",
        "description",
        "features",
        "models",
        "health_endpoint",
        "api_format",
        "timeout",
        "connect_timeout",
        "read_timeout",
        "headers",
        "max_connections",
        "requires_api_key",
        "docs",
        "location",
        "custom_config",
        "max_concurrency",
        "first_token_timeout",
        "first_token_timeout_max",
        "prompt_tokens_per_second",
        "stall_timeout",
        "launch",
    ]
)
# Keys beyond these stay in `extra`: the provider type's own options (the pool and engine
# options of in-process models included), read once by validation into `options`.
MODEL_KEYS = frozenset(["name", "size", "context_length", "specialty"])  # others (pricing, launch, ...) go to extra
EXACT_KEYS = frozenset(
    [
        "provider",
        "model",
        "priority",
        "fallback",
        "description",
        "retry_attempts",
        "retry_delay_ms",
        "strict",
        "pass_unchecked_params",
    ]
)
PATTERN_KEYS = frozenset(["pattern", "provider", "model", "fallback", "description", "strict", "pass_unchecked_params"])
CHAIN_KEYS = frozenset(["chain", "description", "retry_attempts", "retry_delay_ms"])
# Routing sections read by strategies, capabilities and health checks.
ROUTING_SECTIONS = frozenset(
    [
        "capabilities",
        "redundant_models",
        "model_size_routing",
        "load_balancing",
        "routing_strategy",
        "health_checks",
        "rate_limit_settings",
        "provider_hints",
        "cache",
        "routing",
        "version",
        "metadata",
        "defaults",
        "tag_routes",
    ]
)
SERVER_KEYS = frozenset(
    [
        "host",
        "port",
        "master_key",
        "max_body_size",
        "workers",
        "database_url",
        "header_timeout",
        "body_timeout",
        "send_timeout",
        "keep_alive_timeout",
        "max_connections_per_client",
        "max_n",
        "max_choices",
    ]
)
SERVER_TIMEOUTS = {
    "header_timeout": "header_timeout_s",
    "body_timeout": "body_timeout_s",
    "send_timeout": "send_timeout_s",
    "keep_alive_timeout": "keep_alive_timeout_s",
}


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[Config, Problems]:
    """Load and parse a config path; returns the config and every problem found."""
    path = Path(path)
    problems = Problems()
    config = Config(source=str(path))
    sections: _Sections = {}
    for file, raw in _read_documents(path, problems).items():
        unset: set[str] = set()
        doc = interpolate(raw, env, unset)
        for name in sorted(unset):
            problems.warning(file, "", f"environment variable {name} is referenced but not set")
        _parse_document(file, doc, config, problems, env, sections)
    _parse_settings(config, sections, problems)
    return config, problems


def load_config_or_raise(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[Config, Problems]:
    config, problems = load_config(path, env)
    if problems.errors:
        raise ConfigError(list(problems))
    return config, problems


def config_from_dict(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> tuple[Config, Problems]:
    """Parse the single-file layout from a mapping (the library's `Router.from_config(dict)`)."""
    problems = Problems()
    config = Config(source="<dict>")
    sections: _Sections = {}
    _parse_document("<dict>", interpolate(dict(data), env, None), config, problems, env, sections)
    _parse_settings(config, sections, problems)
    return config, problems


def provider_config(name: str, entry: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ProviderConfig:
    """One provider entry, as it would appear under `providers:`; raises ConfigError if invalid."""
    problems = Problems()
    reader = FieldReader("<arguments>", problems)
    provider = _parse_provider(reader, name, name, interpolate(dict(entry), env, None), env)
    if problems.errors or provider is None:
        raise ConfigError(list(problems))
    return provider


def _read_documents(path: Path, problems: Problems) -> dict[str, dict[str, Any]]:
    if path.is_dir():
        files = [path / SINGLE_FILE, path / PROVIDERS_FILE, path / MAPPINGS_FILE]
        if not (path / PROVIDERS_FILE).exists() and not (path / SINGLE_FILE).exists():
            problems.error(str(path), "", f"expected {PROVIDERS_FILE} (and {MAPPINGS_FILE}) or {SINGLE_FILE}")
    elif path.exists():
        files = [path]
    else:
        problems.error(str(path), "", "no such file or folder")
        return {}
    documents: dict[str, dict[str, Any]] = {}
    for file in files:
        if file.exists():
            doc = _read_yaml(file, problems)
            if doc is not None:
                documents[str(file)] = doc
    return documents


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a duplicate provider or route is a mistake."""

    duplicates: list[tuple[str, int]]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str | int) and key in seen:
                self.duplicates.append((str(key), key_node.start_mark.line + 1))
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _read_yaml(file: Path, problems: Problems) -> dict[str, Any] | None:
    try:
        loader = _UniqueKeyLoader(file.read_text(encoding="utf-8"))
        loader.duplicates = []
        try:
            doc = loader.get_single_data()
        finally:
            loader.dispose()
        for key, line in loader.duplicates:
            problems.error(str(file), f"line {line}", f"duplicate key {key!r}: the earlier one would be lost")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problems.error(str(file), where, f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return None
    except OSError as exc:
        problems.error(str(file), "", f"cannot read: {exc.strerror}")
        return None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        problems.error(str(file), "", f"expected a mapping at the top level, got {type(doc).__name__}")
        return None
    return doc


# The raw routing sections by top-level key, with the file each came from.
_Sections = dict[str, tuple[str, Any]]


def _parse_settings(config: Config, sections: _Sections, problems: Problems) -> None:
    """The routing sections, once every file is read (they name providers from any of them)."""
    readers = {key: FieldReader(file, problems) for key, (file, _) in sections.items()}
    fallback = FieldReader(config.source, problems)
    config.routing.settings = parse_routing_settings(
        {key: value for key, (_, value) in sections.items()},
        config.providers,
        config.state,
        lambda key: readers.get(key, fallback),
    )


def _parse_document(
    file: str,
    doc: dict[str, Any],
    config: Config,
    problems: Problems,
    env: Mapping[str, str] | None,
    sections: _Sections,
) -> None:
    is_mappings = file.endswith(MAPPINGS_FILE)
    if is_litellm(doc):
        doc = from_litellm(file, doc, problems)
    reader = FieldReader(file, problems)
    for key, value in doc.items():
        if key == "providers":
            config.origins.setdefault("providers", file)
            _parse_providers(reader, value, config, env)
        elif key == "routing":
            _parse_routing(reader, "routing", value, config, sections)
        elif key == "server":
            _parse_server(reader, value, config.server)
            if isinstance(value, dict) and value.get("database_url"):
                set_database_url(reader, "server.database_url", value["database_url"], config.ledger)
        elif key in SECTIONS:
            parse_section(reader, key, value, config)
        elif is_mappings:
            _parse_routing(reader, "", {key: value}, config, sections)
        elif key in ROUTING_SECTIONS:
            sections[key] = (file, value)
            config.origins[key] = file
        else:
            problems.warning(file, key, "unknown top-level key, ignored")


def _parse_providers(reader: FieldReader, value: Any, config: Config, env: Mapping[str, str] | None) -> None:
    for name, raw in (reader.mapping("providers", value) or {}).items():
        path = f"providers.{name}"
        if name in config.providers:
            reader.error(path, "duplicate provider name")
            continue
        entry = reader.mapping(path, raw)
        if entry is not None:
            provider = _parse_provider(reader, path, str(name), entry, env)
            if provider is not None:
                config.providers[provider.name] = provider
                config.origins[path] = reader.source


def _parse_provider(
    reader: FieldReader, path: str, name: str, entry: dict[str, Any], env: Mapping[str, str] | None
) -> ProviderConfig | None:
    ptype = entry.get("type")
    if not isinstance(ptype, str) or not ptype:
        reader.error(f"{path}.type", "expected a provider type such as openai_compatible")
        return None
    provider = ProviderConfig(name=name, type=ptype)
    # Keys beyond the common ones are type-specific options (e.g. Azure's `deployments`);
    # the provider types know them, so validation is the one to warn about keys no type reads.
    provider.extra = {key: value for key, value in entry.items() if key not in PROVIDER_KEYS}
    provider.base_url = reader.field(entry, path, "base_url", reader.text, "")
    provider.status = reader.field(entry, path, "status", reader.text, "active")
    provider.description = str(entry.get("description") or "")
    provider.features = [str(f) for f in entry.get("features") or []]
    provider.health_endpoint = reader.field(entry, path, "health_endpoint", reader.text, None)
    provider.api_format = reader.field(entry, path, "api_format", reader.text, None)
    provider.env_var = reader.field(entry, path, "env_var", reader.text, None)
    provider.requires_api_key = reader.field(entry, path, "requires_api_key", reader.boolean, None)
    api_key = entry.get("api_key") or (lookup(provider.env_var, env) if provider.env_var else None)
    provider.api_key = Secret(str(api_key)) if api_key else None
    custom = reader.mapping(f"{path}.custom_config", entry.get("custom_config")) or {}
    headers = {**(custom.get("headers") or {}), **(reader.mapping(f"{path}.headers", entry.get("headers")) or {})}
    provider.headers = {str(k): str(v) for k, v in headers.items()}
    for key in TIMEOUT_KEYS:
        setattr(provider, key, reader.field(entry, path, key, reader.seconds, getattr(provider, key)))
    provider.prompt_tokens_per_second = reader.field(
        entry, path, "prompt_tokens_per_second", reader.rate, provider.prompt_tokens_per_second
    )
    provider.max_connections = reader.field(
        entry, path, "max_connections", reader.positive_integer, provider.max_connections
    )
    provider.max_concurrency = reader.field(entry, path, "max_concurrency", reader.positive_integer, None)
    provider.models = _parse_models(reader, f"{path}.models", entry.get("models"))
    if "launch" in entry:  # a server llmmux starts, watches and stops itself
        models = provider.model_names()
        provider.launch = parse_launch(entry["launch"], f"{path}.launch", name, provider.base_url, models, reader)
    return provider


TIMEOUT_KEYS = (
    "timeout",
    "connect_timeout",
    "read_timeout",
    "first_token_timeout",
    "first_token_timeout_max",
    "stall_timeout",
)


def _parse_models(reader: FieldReader, path: str, value: Any) -> list[ModelEntry]:
    if value is None:
        return []
    if not isinstance(value, list):
        reader.error(path, f"expected a list of models, got {type(value).__name__}")
        return []
    models: list[ModelEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        entry = _parse_model(reader, f"{path}[{i}]", item)
        if entry is None:
            continue
        if entry.name in seen:
            reader.error(f"{path}[{i}]", f"duplicate model name {entry.name!r}")
            continue
        seen.add(entry.name)
        models.append(entry)
    return models


def _parse_model(reader: FieldReader, path: str, item: Any) -> ModelEntry | None:
    if isinstance(item, str):
        return ModelEntry(name=item)
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        reader.error(path, "expected a model name or a mapping with a 'name'")
        return None
    size = item.get("size")
    return ModelEntry(
        name=item["name"],
        size=str(size) if size is not None else None,
        context_length=reader.field(item, path, "context_length", reader.positive_integer, None),
        specialty=str(item["specialty"]) if item.get("specialty") is not None else None,
        extra={k: v for k, v in item.items() if k not in MODEL_KEYS},
    )


def _parse_routing(reader: FieldReader, prefix: str, value: Any, config: Config, sections: _Sections) -> None:
    """Routes, patterns and chains, each recorded in `config.origins` under the key path
    validation names it by (without a `routing.` prefix)."""
    routing, file = config.routing, reader.source
    for key, section in (reader.mapping(prefix or "routing", value) or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        if key == "exact_matches":
            for public, raw in (reader.mapping(path, section) or {}).items():
                route = _parse_exact(reader, f"{path}.{public}", str(public), raw)
                if route is not None:
                    routing.exact[route.public] = route
                    config.record_origin(f"exact_matches.{public}", file, f"{path}.{public}")
        elif key == "patterns":
            for i, pattern in _parse_patterns(reader, path, section):
                config.record_origin(f"patterns[{len(routing.patterns)}]", file, f"{path}[{i}]")
                routing.patterns.append(pattern)
        elif key == "fallback_chains":
            for name, raw in (reader.mapping(path, section) or {}).items():
                chain = _parse_chain(reader, f"{path}.{name}", str(name), raw)
                if chain is not None:
                    routing.chains[chain.name] = chain
                    config.record_origin(f"fallback_chains.{name}", file, f"{path}.{name}")
        else:
            if key not in ROUTING_SECTIONS:
                reader.warning(path, "unknown routing section, ignored")
            else:
                sections[key] = (file, section)
                config.record_origin(key, file, path)


def _parse_exact(reader: FieldReader, path: str, public: str, raw: Any) -> ExactRoute | None:
    entry = reader.mapping(path, raw)
    if entry is None:
        return None
    provider = entry.get("provider")
    if not isinstance(provider, str) or not provider:
        reader.error(f"{path}.provider", "expected the name of a provider")
        return None
    reader.unknown(path, entry, EXACT_KEYS, kept=True)
    fallback, no_fallback = parse_fallback(entry.get("fallback"), f"{path}.fallback", reader)
    return ExactRoute(
        public=public,
        provider=provider,
        model=reader.field(entry, path, "model", reader.text, None),
        priority=reader.field(entry, path, "priority", reader.text, None),
        fallback=fallback,
        no_fallback=no_fallback,
        description=str(entry.get("description") or ""),
        retry_attempts=reader.field(entry, path, "retry_attempts", reader.integer, 0),
        retry_delay_ms=reader.field(entry, path, "retry_delay_ms", reader.integer, DEFAULT_RETRY_DELAY_MS),
        strict=reader.field(entry, path, "strict", reader.boolean, False),
        pass_unchecked_params=reader.field(entry, path, "pass_unchecked_params", reader.boolean, False),
    )


def _parse_patterns(reader: FieldReader, path: str, section: Any) -> list[tuple[int, PatternRoute]]:
    """The well-formed patterns, each with its index in `section` (the file's own numbering)."""
    if not isinstance(section, list):
        reader.error(path, f"expected a list of patterns, got {type(section).__name__}")
        return []
    routes: list[tuple[int, PatternRoute]] = []
    for i, raw in enumerate(section):
        where = f"{path}[{i}]"
        entry = reader.mapping(where, raw)
        if entry is None:
            continue
        pattern, provider = entry.get("pattern"), entry.get("provider")
        if not isinstance(pattern, str) or not isinstance(provider, str):
            reader.error(where, "expected 'pattern' (a regex) and 'provider'")
            continue
        reader.unknown(where, entry, PATTERN_KEYS, kept=True)
        fallback, no_fallback = parse_fallback(entry.get("fallback"), f"{where}.fallback", reader)
        routes.append(
            (
                i,
                PatternRoute(
                    pattern=pattern,
                    provider=provider,
                    model=reader.field(entry, where, "model", reader.text, None),
                    fallback=fallback,
                    no_fallback=no_fallback,
                    description=str(entry.get("description") or ""),
                    strict=reader.field(entry, where, "strict", reader.boolean, False),
                    pass_unchecked_params=reader.field(entry, where, "pass_unchecked_params", reader.boolean, False),
                ),
            )
        )
    return routes


def _parse_chain(reader: FieldReader, path: str, name: str, raw: Any) -> FallbackChain | None:
    entry = reader.mapping(path, raw)
    if entry is None:
        return None
    reader.unknown(path, entry, CHAIN_KEYS, kept=True)
    steps = entry.get("chain")
    if not isinstance(steps, list) or not steps:
        reader.error(f"{path}.chain", "expected a non-empty list of providers or models")
        return None
    chain: list[str] = []
    for i, step in enumerate(steps):
        # The seeds write steps either as names or as one-key tiers: `- primary: ollama`.
        if isinstance(step, str):
            chain.append(step)
        elif isinstance(step, dict) and len(step) == 1 and isinstance(next(iter(step.values())), str):
            chain.append(next(iter(step.values())))
        else:
            reader.error(f"{path}.chain[{i}]", "expected a name or a one-key mapping like 'primary: ollama'")
    return FallbackChain(
        name=name,
        chain=chain,
        description=str(entry.get("description") or ""),
        retry_attempts=reader.field(entry, path, "retry_attempts", reader.integer, 0),
        retry_delay_ms=reader.field(entry, path, "retry_delay_ms", reader.integer, DEFAULT_RETRY_DELAY_MS),
    )


def _parse_server(reader: FieldReader, value: Any, server: ServerConfig) -> None:
    entry = reader.mapping("server", value) or {}
    reader.unknown("server", entry, SERVER_KEYS, kept=True)
    if entry.get("host") is not None:
        server.host = str(entry["host"])
    server.port = reader.field(entry, "server", "port", reader.integer, server.port)
    server.workers = max(1, reader.field(entry, "server", "workers", reader.integer, server.workers))
    if entry.get("master_key"):
        server.master_key = Secret(str(entry["master_key"]))
    server.max_body_bytes = reader.field(entry, "server", "max_body_size", reader.size, server.max_body_bytes)
    server.max_n = max(1, reader.field(entry, "server", "max_n", reader.integer, server.max_n))
    server.max_choices = max(1, reader.field(entry, "server", "max_choices", reader.integer, server.max_choices))
    for key, attribute in SERVER_TIMEOUTS.items():
        setattr(server, attribute, reader.field(entry, "server", key, reader.duration, getattr(server, attribute)))
    server.max_connections_per_client = reader.field(
        entry, "server", "max_connections_per_client", reader.integer, server.max_connections_per_client
    )
