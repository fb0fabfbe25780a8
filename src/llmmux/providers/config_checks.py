"""Checks of each provider entry against its provider type: options, base URL, launch, API key.

The loader reads an entry without knowing the types; these checks need the registry, so
they live here and `llmmux.loading` runs them with the rest of validation. Each entry's own
keys are read here, once, by its type (`Provider.read_options`), onto `ProviderConfig.options`:
the provider built from the entry takes them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from ..config.fields import FieldReader
from ..config.model import Config
from ..config.problems import Problems
from .base import ProviderType


def check_providers(config: Config, types: Mapping[str, ProviderType], problems: Problems) -> None:
    for name, provider in config.providers.items():
        path = f"providers.{name}"
        file, _ = config.locate(path)  # the entry's own file, not the config folder
        kind = types.get(provider.type)
        if kind is None:
            problems.warning(
                file,
                f"{path}.type",
                f"provider type {provider.type!r} is not supported; serve will skip this provider "
                f"(supported: {', '.join(sorted(types))})",
            )
            continue
        provider.options = kind.provider_class.read_options(provider, FieldReader(file, problems), path)
        if kind.in_process and provider.launch is not None:
            problems.error(
                file,
                f"{path}.launch",
                f"type {provider.type} runs models in-process; a managed server needs an "
                "OpenAI-compatible type such as llama_cpp_server or openai_compatible",
            )
        if kind.in_process or provider.launch is not None:  # no URL to check: none, or from its port
            continue
        url = provider.base_url or kind.base_url
        parts = urlsplit(url)
        if not url:
            problems.error(file, f"{path}.base_url", "expected a base URL such as http://127.0.0.1:8000/v1")
        elif parts.scheme not in ("http", "https") or not parts.hostname:
            problems.error(file, f"{path}.base_url", f"expected an http(s) URL with a host, got {url!r}")
        known = kind.provider_class.options_type.keys() | kind.options
        for key in provider.extra:
            if key not in known:
                problems.warning(
                    file,
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
            problems.warning(file, path, f"no API key for this cloud provider: {hint}")
