"""Each setting is read once, when the config loads, and what is built from it takes the typed result."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmmux.loading import load
from llmmux.local import catalog
from llmmux.local.catalog import LocalSettings
from llmmux.providers.managed import ManagedProvider
from llmmux.router import Router


def test_local_model_settings_are_read_once_and_the_provider_takes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "qwen.gguf").write_bytes(b"")
    found: list[Path] = []
    discover = catalog.discover
    monkeypatch.setattr(catalog, "discover", lambda folder, **kw: found.append(folder) or discover(folder, **kw))
    loaded = load(
        {"providers": {"local": {"type": "llama_cpp", "models_dir": str(tmp_path), "max_loaded_models": 2}}}
    ).raise_for_errors()
    entry = loaded.config.providers["local"]
    assert isinstance(entry.options, LocalSettings) and entry.options.limits.max_loaded_models == 2
    assert entry.model_names() == ["qwen"]  # found in models_dir when the config loaded
    router = Router(loaded.config)
    assert router.providers["local"].settings is entry.options  # type: ignore[attr-defined]
    assert "qwen" in router.models()
    assert found == [tmp_path]  # the folder was searched once, not again by the provider


def test_provider_options_and_launch_blocks_are_read_once(tmp_path: Path) -> None:
    loaded = load(
        {
            "providers": {
                "up": {"type": "openai", "api_key": "sk-x", "stream_usage": False, "models": ["gpt-4o"]},
                "srv": {"type": "llama_cpp_server", "models": ["m"], "launch": {"command": "llama-server"}},
            }
        }
    ).raise_for_errors()
    router = Router(loaded.config)
    assert router.providers["up"].options is loaded.config.providers["up"].options
    managed = router.providers["srv"]
    assert isinstance(managed, ManagedProvider)
    assert managed.server.spec is loaded.config.providers["srv"].launch


def test_the_routing_settings_travel_on_the_config() -> None:
    loaded = load(
        {
            "providers": {"up": {"type": "openai", "api_key": "sk-x", "models": ["gpt-4o"]}},
            "routing_strategy": {"default": "lowest_latency", "max_fallbacks": 2},
            "rate_limit_settings": {"limits": {"up": {"rpm": 60}}},
        }
    ).raise_for_errors()
    settings = loaded.config.routing.settings
    assert (settings.default.strategy, settings.default.max_fallbacks) == ("lowest_latency", 2)
    router = Router(loaded.config)
    assert router.table.settings is settings and router.limiter.limits("up") == settings.limits.providers["up"]
    added = router.add_provider("more", "openai", api_key="sk-y", models=["gpt-4o-mini"], max_concurrency=3)
    assert added is not None and router.limiter.limits("more") is not None
    assert router.config.routing.settings.limits.providers["up"].rpm == 60  # the section's own limits kept
