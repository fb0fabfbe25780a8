"""Provider options: each type declares its keys as typed fields, read by the config's one field reader."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pytest

from llmmux.config import config_from_dict
from llmmux.config.fields import FieldReader
from llmmux.config.problems import Problems
from llmmux.loading import check
from llmmux.providers.anthropic import AnthropicOptions
from llmmux.providers.azure import AzureOpenAIProvider, AzureOptions
from llmmux.providers.openai import OpenAIOptions
from llmmux.providers.openrouter import OpenRouterOptions
from llmmux.providers.options import AS_TEXT, AtLeast, ProviderOptions
from llmmux.providers.registry import create_provider

LOCAL = {"type": "openai_compatible", "base_url": "http://127.0.0.1:8000/v1"}


def problems_for(entry: dict[str, Any]) -> list[str]:
    config, problems = config_from_dict({"providers": {"a": entry}})
    return [str(p) for p in check(config, problems=problems).problems]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({**LOCAL, "completions": "yes"}, "providers.a.completions: expected one of chat, native, got 'yes'"),
        ({**LOCAL, "stream_usage": "false"}, "providers.a.stream_usage: expected true or false, got 'false'"),
        ({**LOCAL, "embedding_batch_size": 0}, "providers.a.embedding_batch_size: expected a positive integer, got 0"),
        ({**LOCAL, "forward_headers": ["Cookie"]}, "providers.a.forward_headers: cannot pass on cookie"),
        (
            {"type": "anthropic", "api_key": "k", "default_max_tokens": -1},
            "providers.a.default_max_tokens: expected a positive integer, got -1",
        ),
        (
            {"type": "openrouter", "api_key": "k", "provider_preferences": ["azure"]},
            "providers.a.provider_preferences: expected a mapping, got list",
        ),
        (
            {"type": "azure", "api_key": "k", "base_url": "https://r.openai.azure.com", "deployments": "gpt-4o"},
            "providers.a.deployments: expected a mapping, got str",
        ),
    ],
)
def test_a_wrong_option_in_a_config_file_is_an_error_naming_its_key_and_what_was_expected(
    entry: dict[str, Any], expected: str
) -> None:
    [problem] = [p for p in problems_for(entry) if p.startswith("error: ")]
    assert problem.startswith("error: <dict>: ") and expected in problem


def test_good_options_are_neither_errors_nor_unknown() -> None:
    entry = {**LOCAL, "stream_usage": False, "completions": "native", "embedding_batch_size": 8}
    assert problems_for(entry) == []
    azure = {
        "type": "azure",
        "api_key": "k",
        "base_url": "https://r.openai.azure.com",
        "api_version": datetime.date(2024, 10, 21),  # what YAML makes of an unquoted 2024-10-21
        "deployments": {"gpt-4o": "prod"},
        "azure_ad_token": "",  # an unset ${VAR}: no value, not a wrong one
    }
    assert problems_for(azure) == []


def test_a_provider_reads_its_typed_options_once_and_keeps_the_default_for_a_wrong_one() -> None:
    provider = create_provider(
        "azure", api_key="k", base_url="https://r.openai.azure.com", api_version=20241021, stream_usage="no"
    )
    assert isinstance(provider, AzureOpenAIProvider) and isinstance(provider.options, AzureOptions)
    assert provider.api_version == "20241021" and provider.stream_usage is True
    assert provider.validate_config() == ["stream_usage: expected true or false, got 'no'"]


def test_each_type_declares_the_keys_it_reads() -> None:
    assert {"embedding_batch_size", "forward_headers"} <= ProviderOptions.keys()
    assert {"stream_usage", "completions", "responses"} <= OpenAIOptions.keys()
    assert {"site_url", "app_name", "provider_preferences", "stream_usage"} <= OpenRouterOptions.keys()
    assert {"api_version", "deployments", "azure_ad_token"} <= AzureOptions.keys()
    assert AnthropicOptions.keys() == ProviderOptions.keys() | {"default_max_tokens"}


@dataclass(frozen=True, slots=True)
class PluginOptions(ProviderOptions):
    """A third-party type's options: declared, and read by the same generic reader."""

    mode: Literal["fast", "careful"] = "fast"
    retries: Annotated[int, AtLeast(0)] = 2
    tags: tuple[str, ...] = ()
    version: Annotated[str, AS_TEXT] | None = None
    labels: dict[str, str] | None = None


def test_any_declared_options_are_read_by_type_with_each_problem_at_its_path() -> None:
    problems = Problems()
    reader = FieldReader("plugins.yaml", problems)
    entry = {"mode": "slow", "retries": 5, "tags": ["a", "b"], "version": 3.1, "labels": {"x": 1}, "other": True}
    options = PluginOptions.from_mapping(entry, reader, "providers.p")
    assert options == PluginOptions(mode="fast", retries=5, tags=("a", "b"), version="3.1", labels={"x": "1"})
    assert [str(p) for p in problems] == [
        "error: plugins.yaml: providers.p.mode: expected one of fast, careful, got 'slow'"
    ]
