"""Named groups of candidates: `capabilities:` and `redundant_models:` (the seeds' formats).

    capabilities:
      code:
        preferred_models: [qwen3-coder:480b, qwen-coder-vllm, qwen2.5-coder:7b]
        routing_strategy: load_balance       # optional; else the default strategy
        fallback: llama3.1:latest            # optional, after the models' own fallbacks
    redundant_models:
      "llama3.1:8b":
        providers:
          - {provider: ollama, weight: 0.7}
          - {provider: llama_cpp, weight: 0.3, model: llama-3.1-8b-instruct}

A request asks for a capability with `"model": "capability:code"`, a `capability` field or
an `x-llmmux-capability` header; a redundant model is asked for by its name and spread
over its providers by weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fields import FieldReader
from .route_policy import strategy_name

CAPABILITY_PREFIX = "capability:"
NO_FALLBACK = frozenset({"none", "null", "false", ""})
CAPABILITY_KEYS = ("preferred_models", "models", "provider", "routing_strategy", "fallback", "description")
REDUNDANT_KEYS = ("providers", "routing_strategy", "fallback", "description")


@dataclass(frozen=True, slots=True)
class Capability:
    name: str
    models: list[str] = field(default_factory=list)
    provider: str | None = None
    strategy: str | None = None
    fallback: list[str] = field(default_factory=list)
    no_fallback: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class Member:
    provider: str
    weight: float = 1.0
    model: str | None = None


@dataclass(frozen=True, slots=True)
class RedundantGroup:
    name: str
    members: list[Member]
    strategy: str = "weighted"
    fallback: list[str] = field(default_factory=list)
    no_fallback: bool = False


def parse_fallback(value: Any, path: str, reader: FieldReader) -> tuple[list[str], bool]:
    """A fallback, wherever one is written (routes, patterns, groups): a name, a list of names,
    or none (quality preservation: fail rather than degrade)."""
    if value is None:
        return [], False
    if value is False or (isinstance(value, str) and value.strip().lower() in NO_FALLBACK):
        return [], True
    names = reader.strings(path, value)
    return names or [], False


def _strategy(entry: dict[str, Any], path: str, reader: FieldReader) -> str | None:
    raw = entry.get("routing_strategy")
    if raw is None:
        return None
    name = strategy_name(str(raw))
    if name is None:
        reader.error(f"{path}.routing_strategy", f"unknown routing strategy {raw!r}")
    return name


def parse_capabilities(section: Any, reader: FieldReader) -> dict[str, Capability]:
    capabilities: dict[str, Capability] = {}
    for name, raw in (reader.mapping("capabilities", section) or {}).items():
        path = f"capabilities.{name}"
        entry = reader.mapping(path, raw)
        if entry is None:
            continue
        reader.unknown(path, entry, CAPABILITY_KEYS)
        models = entry.get("preferred_models", entry.get("models"))
        names = reader.strings(f"{path}.preferred_models", models) if models is not None else []
        provider = entry.get("provider")
        if provider is not None and not isinstance(provider, str):
            reader.error(f"{path}.provider", "expected the name of a provider")
            provider = None
        if not names and provider is None:
            reader.error(path, "expected preferred_models, a provider, or both")
            continue
        fallback, none = parse_fallback(entry.get("fallback"), f"{path}.fallback", reader)
        capabilities[str(name)] = Capability(
            str(name),
            names or [],
            provider,
            _strategy(entry, path, reader),
            fallback,
            none,
            str(entry.get("description") or ""),
        )
    return capabilities


def parse_redundant(section: Any, reader: FieldReader) -> dict[str, RedundantGroup]:
    groups: dict[str, RedundantGroup] = {}
    for name, raw in (reader.mapping("redundant_models", section) or {}).items():
        path = f"redundant_models.{name}"
        entry = reader.mapping(path, raw)
        if entry is None:
            continue
        reader.unknown(path, entry, REDUNDANT_KEYS)
        members = _members(entry.get("providers"), f"{path}.providers", reader)
        if not members:
            continue
        fallback, none = parse_fallback(entry.get("fallback"), f"{path}.fallback", reader)
        groups[str(name)] = RedundantGroup(
            str(name), members, _strategy(entry, path, reader) or "weighted", fallback, none
        )
    return groups


def _members(raw: Any, path: str, reader: FieldReader) -> list[Member]:
    if not isinstance(raw, list) or not raw:
        reader.error(path, "expected a list of {provider, weight} entries")
        return []
    members = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            members.append(Member(item))
            continue
        entry = reader.mapping(f"{path}[{i}]", item)
        if entry is None:
            continue
        reader.unknown(f"{path}[{i}]", entry, ("provider", "weight", "model"))
        provider = entry.get("provider")
        if not isinstance(provider, str) or not provider:
            reader.error(f"{path}[{i}].provider", "expected the name of a provider")
            continue
        weight = 1.0 if entry.get("weight") is None else reader.number(f"{path}[{i}].weight", entry["weight"])
        model = entry.get("model")
        members.append(Member(provider, 1.0 if weight is None else weight, str(model) if model else None))
    return members
