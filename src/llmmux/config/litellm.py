"""Reads a LiteLLM proxy config (`model_list`, `router_settings`) as llmmux's single-file layout.

So a `litellm.yaml` users already keep works as `--config` unchanged: each distinct upstream
(type, base URL, key) becomes a provider, each `model_name` a public route, and LiteLLM's
fallbacks and model-group aliases become llmmux fallbacks and aliases.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from .problems import Problems

# LiteLLM's model prefix -> llmmux provider type.
PREFIX_TYPES = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "ollama": "ollama",
    "ollama_chat": "ollama",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "vertex_ai": "gemini",
    "bedrock": "bedrock",
    "azure": "azure",
    "openrouter": "openrouter",
    "groq": "groq",
    "together_ai": "together",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "fireworks_ai": "fireworks",
    "xai": "xai",
    "perplexity": "perplexity",
    "hosted_vllm": "vllm",
    "vllm": "vllm",
    "lm_studio": "lm_studio",
    "llamafile": "openai_compatible",
    "custom_openai": "openai_compatible",
}


def is_litellm(doc: dict[str, Any]) -> bool:
    return isinstance(doc.get("model_list"), list)


def from_litellm(file: str, doc: dict[str, Any], problems: Problems) -> dict[str, Any]:
    """The same content in llmmux's layout: `providers:` and `routing:`."""
    providers: dict[str, dict[str, Any]] = {}
    exact: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(doc["model_list"]):
        converted = _entry(file, i, entry, problems)
        if converted is None:
            continue
        public, ptype, model, settings = converted
        name = _provider_name(providers, ptype, settings)
        provider = providers.setdefault(name, {"type": ptype, "models": [], **settings})
        if model not in [m["name"] for m in provider["models"]]:
            provider["models"].append({"name": model, **_model_info(entry)})
        route = exact.get(public)
        if route is None:
            exact[public] = {"provider": name, "model": model, "fallback": []}
        else:
            # Several deployments of one model_name: the later ones back up the first.
            route["fallback"].append(f"{name}/{model}")
    _fallbacks(file, doc.get("router_settings") or {}, exact, problems)
    _aliases(doc.get("router_settings") or {}, exact)
    for key in doc:
        if key not in ("model_list", "router_settings", "litellm_settings", "general_settings"):
            problems.warning(file, key, "LiteLLM key not used by llmmux")
    return {"providers": providers, "routing": {"exact_matches": exact}}


def _entry(file: str, i: int, entry: Any, problems: Problems) -> tuple[str, str, str, dict[str, Any]] | None:
    path = f"model_list[{i}]"
    params = entry.get("litellm_params") if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str) or not isinstance(params, dict):
        problems.error(file, path, "expected model_name and litellm_params")
        return None
    target = params.get("model")
    if not isinstance(target, str) or not target:
        problems.error(file, f"{path}.litellm_params.model", "expected a model such as openai/gpt-4o")
        return None
    prefix, _, model = target.partition("/")
    if not model:
        prefix, model = "openai", target
    ptype = PREFIX_TYPES.get(prefix)
    if ptype is None:
        problems.warning(
            file,
            f"{path}.litellm_params.model",
            f"unknown LiteLLM provider prefix {prefix!r}; treated as an OpenAI-compatible server",
        )
        ptype, model = "openai_compatible", target
    settings: dict[str, Any] = {}
    if params.get("api_base"):
        settings["base_url"] = params["api_base"]
        if ptype == "openai":
            ptype = "openai_compatible"
    if params.get("api_key"):
        settings["api_key"] = params["api_key"]
    if params.get("timeout"):
        settings["timeout"] = params["timeout"]
    return entry["model_name"], ptype, model, settings


def _model_info(entry: dict[str, Any]) -> dict[str, Any]:
    info = entry.get("model_info") or {}
    out: dict[str, Any] = {}
    for source, target in (("context_length", "context_length"), ("max_input_tokens", "context_length")):
        if isinstance(info.get(source), int):
            out[target] = info[source]
    return out


def _provider_name(providers: dict[str, dict[str, Any]], ptype: str, settings: dict[str, Any]) -> str:
    for name, existing in providers.items():
        if (
            existing["type"] == ptype
            and all(existing.get(k) == v for k, v in settings.items())
            and all(settings.get(k) == existing.get(k) for k in ("base_url", "api_key"))
        ):
            return name
    base = ptype
    host = urlsplit(settings.get("base_url", "")).netloc
    if host:
        base = f"{ptype}-{host.replace(':', '-')}"
    name, n = base, 2
    while name in providers:
        name, n = f"{base}-{n}", n + 1
    return name


def _fallbacks(file: str, settings: dict[str, Any], exact: dict[str, dict[str, Any]], problems: Problems) -> None:
    for i, item in enumerate(settings.get("fallbacks") or []):
        if not isinstance(item, dict):
            problems.error(file, f"router_settings.fallbacks[{i}]", "expected a mapping")
            continue
        # Both shapes exist: {model: [fallbacks]} and {model: x, fallback_models: [...]}.
        if "fallback_models" in item:
            pairs = [(item.get("model"), item["fallback_models"])]
        else:
            pairs = list(item.items())
        for model, fallbacks in pairs:
            if model in exact and isinstance(fallbacks, list):
                exact[model]["fallback"].extend(str(f) for f in fallbacks)
            else:
                problems.error(file, f"router_settings.fallbacks[{i}]", f"unknown model_name {model!r}")


def _aliases(settings: dict[str, Any], exact: dict[str, dict[str, Any]]) -> None:
    for alias, target in (settings.get("model_group_alias") or {}).items():
        members = target if isinstance(target, list) else [target]
        members = [m for m in members if isinstance(m, str) and m in exact]
        if members and alias not in exact:
            first = exact[members[0]]
            exact[alias] = {
                "provider": first["provider"],
                "model": first["model"],
                "fallback": [*first["fallback"], *members[1:]],
            }
