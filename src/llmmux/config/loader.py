"""Reads a config folder (`providers.yaml` + `model-mappings.yaml`) or one `llmmux.yaml`.

Parsing never crashes on what users already keep: unknown keys are kept and reported as
warnings, wrong types as errors naming the file and the key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..periods import parse_duration
from .env import interpolate, lookup
from .litellm import from_litellm, is_litellm
from .model import (
    DEFAULT_RETRY_DELAY_MS,
    Config,
    ExactRoute,
    FallbackChain,
    ModelEntry,
    PatternRoute,
    ProviderConfig,
    RoutingConfig,
    Secret,
    ServerConfig,
)
from .problems import ConfigError, Problems
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
    ]
)
# Kept in `extra` and read by llmmux.local: a managed server (`launch`, any type) and the
# pool and engine options of in-process models (`type: llama_cpp` and `mlx`), checked by validation.
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
NO_FALLBACK = frozenset({"none", "null", "false", ""})


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[Config, Problems]:
    """Load and parse a config path; returns the config and every problem found."""
    path = Path(path)
    problems = Problems()
    documents = _read_documents(path, problems)
    unset: set[str] = set()
    documents = {name: interpolate(doc, env, unset) for name, doc in documents.items()}
    config = Config(source=str(path))
    for file, doc in documents.items():
        _parse_document(file, doc, config, problems, env)
    for name in sorted(unset):
        problems.warning(str(path), "", f"environment variable {name} is referenced but not set")
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
    _parse_document("<dict>", interpolate(dict(data), env, None), config, problems, env)
    return config, problems


def provider_config(name: str, entry: Mapping[str, Any], env: Mapping[str, str] | None = None) -> ProviderConfig:
    """One provider entry, as it would appear under `providers:`; raises ConfigError if invalid."""
    problems = Problems()
    provider = _parse_provider("<arguments>", name, name, interpolate(dict(entry), env, None), problems, env)
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


def _parse_document(
    file: str, doc: dict[str, Any], config: Config, problems: Problems, env: Mapping[str, str] | None
) -> None:
    is_mappings = file.endswith(MAPPINGS_FILE)
    if is_litellm(doc):
        doc = from_litellm(file, doc, problems)
    for key, value in doc.items():
        if key == "providers":
            _parse_providers(file, value, config, problems, env)
        elif key == "routing":
            _parse_routing(file, "routing", value, config.routing, problems)
        elif key == "server":
            _parse_server(file, value, config.server, problems)
            if isinstance(value, dict) and value.get("database_url"):
                set_database_url(file, "server.database_url", value["database_url"], config.ledger, problems)
        elif key in SECTIONS:
            parse_section(file, key, value, config, problems)
        elif is_mappings:
            _parse_routing(file, "", {key: value}, config.routing, problems)
        elif key in ROUTING_SECTIONS:
            config.routing.sections[key] = value
        else:
            problems.warning(file, key, "unknown top-level key, ignored")


def _expect_mapping(file: str, path: str, value: Any, problems: Problems) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    if value is not None:
        problems.error(file, path, f"expected a mapping, got {type(value).__name__}")
    return None


def _parse_providers(file: str, value: Any, config: Config, problems: Problems, env: Mapping[str, str] | None) -> None:
    providers = _expect_mapping(file, "providers", value, problems) or {}
    for name, raw in providers.items():
        path = f"providers.{name}"
        if name in config.providers:
            problems.error(file, path, "duplicate provider name")
            continue
        entry = _expect_mapping(file, path, raw, problems)
        if entry is not None:
            provider = _parse_provider(file, path, str(name), entry, problems, env)
            if provider is not None:
                config.providers[provider.name] = provider


def _parse_provider(
    file: str, path: str, name: str, entry: dict[str, Any], problems: Problems, env: Mapping[str, str] | None
) -> ProviderConfig | None:
    ptype = entry.get("type")
    if not isinstance(ptype, str) or not ptype:
        problems.error(file, f"{path}.type", "expected a provider type such as openai_compatible")
        return None
    provider = ProviderConfig(name=name, type=ptype)
    # Keys beyond the common ones are type-specific options (e.g. Azure's `deployments`);
    # `validate` knows the types, so it is the one to warn about keys no type reads.
    provider.extra = {key: value for key, value in entry.items() if key not in PROVIDER_KEYS}
    provider.base_url = _string(file, f"{path}.base_url", entry.get("base_url"), problems) or ""
    provider.status = _string(file, f"{path}.status", entry.get("status"), problems) or "active"
    provider.description = str(entry.get("description") or "")
    provider.features = [str(f) for f in entry.get("features") or []]
    provider.health_endpoint = _string(file, f"{path}.health_endpoint", entry.get("health_endpoint"), problems)
    provider.api_format = _string(file, f"{path}.api_format", entry.get("api_format"), problems)
    provider.env_var = _string(file, f"{path}.env_var", entry.get("env_var"), problems)
    provider.requires_api_key = entry.get("requires_api_key")
    api_key = entry.get("api_key") or (lookup(provider.env_var, env) if provider.env_var else None)
    provider.api_key = Secret(str(api_key)) if api_key else None
    custom = _expect_mapping(file, f"{path}.custom_config", entry.get("custom_config"), problems) or {}
    headers = {
        **(custom.get("headers") or {}),
        **(_expect_mapping(file, f"{path}.headers", entry.get("headers"), problems) or {}),
    }
    provider.headers = {str(k): str(v) for k, v in headers.items()}
    _parse_timeouts(file, path, entry, provider, problems)
    provider.models = _parse_models(file, f"{path}.models", entry.get("models"), problems)
    return provider


TIMEOUT_KEYS = (
    "timeout",
    "connect_timeout",
    "read_timeout",
    "first_token_timeout",
    "first_token_timeout_max",
    "stall_timeout",
)


def _parse_timeouts(file: str, path: str, entry: dict[str, Any], provider: ProviderConfig, problems: Problems) -> None:
    for key in (*TIMEOUT_KEYS, "prompt_tokens_per_second"):
        if entry.get(key) is None:
            continue
        value = entry[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            unit = "tokens per second" if key == "prompt_tokens_per_second" else "seconds"
            problems.error(file, f"{path}.{key}", f"expected a positive number of {unit}, got {value!r}")
        else:
            setattr(provider, key, float(value))
    for key in ("max_connections", "max_concurrency"):
        limit = entry.get(key)
        if limit is None:
            continue
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            setattr(provider, key, limit)
        else:
            problems.error(file, f"{path}.{key}", f"expected a positive integer, got {limit!r}")


def _parse_models(file: str, path: str, value: Any, problems: Problems) -> list[ModelEntry]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.error(file, path, f"expected a list of models, got {type(value).__name__}")
        return []
    models: list[ModelEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        entry = _parse_model(file, f"{path}[{i}]", item, problems)
        if entry is None:
            continue
        if entry.name in seen:
            problems.error(file, f"{path}[{i}]", f"duplicate model name {entry.name!r}")
            continue
        seen.add(entry.name)
        models.append(entry)
    return models


def _parse_model(file: str, path: str, item: Any, problems: Problems) -> ModelEntry | None:
    if isinstance(item, str):
        return ModelEntry(name=item)
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        problems.error(file, path, "expected a model name or a mapping with a 'name'")
        return None
    ctx = item.get("context_length")
    if ctx is not None and (not isinstance(ctx, int) or isinstance(ctx, bool) or ctx <= 0):
        problems.error(file, f"{path}.context_length", f"expected a positive integer, got {ctx!r}")
        ctx = None
    extra = {k: v for k, v in item.items() if k not in MODEL_KEYS}
    size = item.get("size")
    return ModelEntry(
        name=item["name"],
        size=str(size) if size is not None else None,
        context_length=ctx,
        specialty=str(item["specialty"]) if item.get("specialty") is not None else None,
        extra=extra,
    )


def _parse_routing(file: str, prefix: str, value: Any, routing: RoutingConfig, problems: Problems) -> None:
    doc = _expect_mapping(file, prefix or "routing", value, problems) or {}
    for key, section in doc.items():
        path = f"{prefix}.{key}" if prefix else key
        if key == "exact_matches":
            for public, raw in (_expect_mapping(file, path, section, problems) or {}).items():
                route = _parse_exact(file, f"{path}.{public}", str(public), raw, problems)
                if route is not None:
                    routing.exact[route.public] = route
        elif key == "patterns":
            routing.patterns.extend(_parse_patterns(file, path, section, problems))
        elif key == "fallback_chains":
            for name, raw in (_expect_mapping(file, path, section, problems) or {}).items():
                chain = _parse_chain(file, f"{path}.{name}", str(name), raw, problems)
                if chain is not None:
                    routing.chains[chain.name] = chain
        else:
            if key not in ROUTING_SECTIONS:
                problems.warning(file, path, "unknown routing section, kept but not used")
            routing.sections[key] = section


def _parse_exact(file: str, path: str, public: str, raw: Any, problems: Problems) -> ExactRoute | None:
    entry = _expect_mapping(file, path, raw, problems)
    if entry is None:
        return None
    provider = entry.get("provider")
    if not isinstance(provider, str) or not provider:
        problems.error(file, f"{path}.provider", "expected the name of a provider")
        return None
    _warn_unknown(file, path, entry, EXACT_KEYS, problems)
    fallback, no_fallback = _parse_fallback(file, f"{path}.fallback", entry.get("fallback"), problems)
    return ExactRoute(
        public=public,
        provider=provider,
        model=_string(file, f"{path}.model", entry.get("model"), problems),
        priority=_string(file, f"{path}.priority", entry.get("priority"), problems),
        fallback=fallback,
        no_fallback=no_fallback,
        description=str(entry.get("description") or ""),
        retry_attempts=_count(file, f"{path}.retry_attempts", entry.get("retry_attempts"), 0, problems),
        retry_delay_ms=_count(
            file, f"{path}.retry_delay_ms", entry.get("retry_delay_ms"), DEFAULT_RETRY_DELAY_MS, problems
        ),
        strict=_flag(file, f"{path}.strict", entry.get("strict"), problems),
        pass_unchecked_params=_flag(
            file, f"{path}.pass_unchecked_params", entry.get("pass_unchecked_params"), problems
        ),
    )


def _parse_patterns(file: str, path: str, section: Any, problems: Problems) -> list[PatternRoute]:
    if not isinstance(section, list):
        problems.error(file, path, f"expected a list of patterns, got {type(section).__name__}")
        return []
    routes = []
    for i, raw in enumerate(section):
        entry = _expect_mapping(file, f"{path}[{i}]", raw, problems)
        if entry is None:
            continue
        pattern, provider = entry.get("pattern"), entry.get("provider")
        if not isinstance(pattern, str) or not isinstance(provider, str):
            problems.error(file, f"{path}[{i}]", "expected 'pattern' (a regex) and 'provider'")
            continue
        _warn_unknown(file, f"{path}[{i}]", entry, PATTERN_KEYS, problems)
        fallback, no_fallback = _parse_fallback(file, f"{path}[{i}].fallback", entry.get("fallback"), problems)
        routes.append(
            PatternRoute(
                pattern=pattern,
                provider=provider,
                model=_string(file, f"{path}[{i}].model", entry.get("model"), problems),
                fallback=fallback,
                no_fallback=no_fallback,
                description=str(entry.get("description") or ""),
                strict=_flag(file, f"{path}[{i}].strict", entry.get("strict"), problems),
                pass_unchecked_params=_flag(
                    file, f"{path}[{i}].pass_unchecked_params", entry.get("pass_unchecked_params"), problems
                ),
            )
        )
    return routes


def _parse_chain(file: str, path: str, name: str, raw: Any, problems: Problems) -> FallbackChain | None:
    entry = _expect_mapping(file, path, raw, problems)
    if entry is None:
        return None
    _warn_unknown(file, path, entry, CHAIN_KEYS, problems)
    steps = entry.get("chain")
    if not isinstance(steps, list) or not steps:
        problems.error(file, f"{path}.chain", "expected a non-empty list of providers or models")
        return None
    chain: list[str] = []
    for i, step in enumerate(steps):
        # The seeds write steps either as names or as one-key tiers: `- primary: ollama`.
        if isinstance(step, str):
            chain.append(step)
        elif isinstance(step, dict) and len(step) == 1 and isinstance(next(iter(step.values())), str):
            chain.append(next(iter(step.values())))
        else:
            problems.error(file, f"{path}.chain[{i}]", "expected a name or a one-key mapping like 'primary: ollama'")
    return FallbackChain(
        name=name,
        chain=chain,
        description=str(entry.get("description") or ""),
        retry_attempts=_count(file, f"{path}.retry_attempts", entry.get("retry_attempts"), 0, problems),
        retry_delay_ms=_count(
            file, f"{path}.retry_delay_ms", entry.get("retry_delay_ms"), DEFAULT_RETRY_DELAY_MS, problems
        ),
    )


def _parse_fallback(file: str, path: str, value: Any, problems: Problems) -> tuple[list[str], bool]:
    """A fallback is a name, a list of names, or none (quality preservation: fail, don't degrade)."""
    if value is None:
        return [], False
    if value is False or (isinstance(value, str) and value.strip().lower() in NO_FALLBACK):
        return [], True
    if isinstance(value, str):
        return [value], False
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value), False
    problems.error(file, path, "expected a provider or model name, a list of them, or 'none'")
    return [], False


def _parse_server(file: str, value: Any, server: ServerConfig, problems: Problems) -> None:
    entry = _expect_mapping(file, "server", value, problems) or {}
    _warn_unknown(file, "server", entry, SERVER_KEYS, problems)
    if entry.get("host") is not None:
        server.host = str(entry["host"])
    if entry.get("port") is not None:
        server.port = _count(file, "server.port", entry["port"], server.port, problems)
    if entry.get("workers") is not None:
        server.workers = max(1, _count(file, "server.workers", entry["workers"], 1, problems))
    if entry.get("master_key"):
        server.master_key = Secret(str(entry["master_key"]))
    if entry.get("max_body_size") is not None:
        server.max_body_bytes = _size(
            file, "server.max_body_size", entry["max_body_size"], server.max_body_bytes, problems
        )
    for name in ("max_n", "max_choices"):
        if entry.get(name) is not None:
            setattr(server, name, max(1, _count(file, f"server.{name}", entry[name], getattr(server, name), problems)))
    for key, attribute in SERVER_TIMEOUTS.items():
        if entry.get(key) is not None:
            default = getattr(server, attribute)
            setattr(server, attribute, _duration(file, f"server.{key}", entry[key], default, problems))
    if entry.get("max_connections_per_client") is not None:
        server.max_connections_per_client = _count(
            file,
            "server.max_connections_per_client",
            entry["max_connections_per_client"],
            server.max_connections_per_client,
            problems,
        )


def _duration(file: str, path: str, value: Any, default: float, problems: Problems) -> float:
    """Positive seconds, as a number or a duration such as 10s or 2m."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    try:
        seconds = parse_duration(value) if isinstance(value, str) else 0.0
    except ValueError:
        seconds = 0.0
    if seconds > 0:
        return seconds
    problems.error(file, path, f"expected a positive duration such as 10s or 2m, got {value!r}")
    return default


_UNITS = {"": 1, "b": 1, "kb": 1024, "k": 1024, "mb": 1024**2, "m": 1024**2, "gb": 1024**3, "g": 1024**3}


def _size(file: str, path: str, value: Any, default: int, problems: Problems) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    text = str(value).strip().lower().replace(" ", "").replace("ib", "b")
    number = text.rstrip("kmgb")
    unit = text[len(number) :]
    if number.replace(".", "", 1).isdigit() and unit in _UNITS:
        return int(float(number) * _UNITS[unit])
    problems.error(file, path, f"expected a size such as 32MB or a number of bytes, got {value!r}")
    return default


def _count(file: str, path: str, value: Any, default: int, problems: Problems) -> int:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    problems.error(file, path, f"expected a non-negative integer, got {value!r}")
    return default


def _flag(file: str, path: str, value: Any, problems: Problems) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    problems.error(file, path, f"expected true or false, got {value!r}")
    return False


def _string(file: str, path: str, value: Any, problems: Problems) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    problems.error(file, path, f"expected a string, got {type(value).__name__}")
    return None


def _warn_unknown(file: str, path: str, entry: dict[str, Any], known: frozenset[str], problems: Problems) -> None:
    for key in entry:
        if key not in known:
            problems.warning(file, f"{path}.{key}", "unknown key, kept but not used")
