"""Service presets are data rows: an entry needs its `type` and nothing the row already knows."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from llmmux.config import config_from_dict
from llmmux.config.loader import provider_config
from llmmux.config.model import ProviderConfig
from llmmux.loading import check
from llmmux.providers.base import Provider
from llmmux.providers.openai import OpenAIProvider
from llmmux.providers.registry import PROVIDER_TYPES, create_provider, provider_types
from support import Gateway
from upstreams import FakeOpenAI

# (type, key variable, chat URL, health URL), as each service documents them.
PRESETS = [
    ("openai", "OPENAI_API_KEY", "https://api.openai.com/v1/chat/completions", "https://api.openai.com/v1/models"),
    (
        "groq",
        "GROQ_API_KEY",
        "https://api.groq.com/openai/v1/chat/completions",
        "https://api.groq.com/openai/v1/models",
    ),
    (
        "together",
        "TOGETHER_API_KEY",
        "https://api.together.xyz/v1/chat/completions",
        "https://api.together.xyz/v1/models",
    ),
    ("deepseek", "DEEPSEEK_API_KEY", "https://api.deepseek.com/chat/completions", "https://api.deepseek.com/models"),
    ("mistral", "MISTRAL_API_KEY", "https://api.mistral.ai/v1/chat/completions", "https://api.mistral.ai/v1/models"),
    (
        "fireworks",
        "FIREWORKS_API_KEY",
        "https://api.fireworks.ai/inference/v1/chat/completions",
        "https://api.fireworks.ai/inference/v1/models",
    ),
    ("xai", "XAI_API_KEY", "https://api.x.ai/v1/chat/completions", "https://api.x.ai/v1/models"),
    (
        "perplexity",
        "PERPLEXITY_API_KEY",
        "https://api.perplexity.ai/chat/completions",
        "https://api.perplexity.ai/v1/models",
    ),
    (
        "openrouter",
        "OPENROUTER_API_KEY",
        "https://openrouter.ai/api/v1/chat/completions",
        "https://openrouter.ai/api/v1/models",
    ),
    ("vllm", "VLLM_API_KEY", "http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000/health"),
    ("llama_cpp_server", "LLAMA_API_KEY", "http://127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080/health"),
    ("lm_studio", "LM_API_TOKEN", "http://127.0.0.1:1234/v1/chat/completions", "http://127.0.0.1:1234/v1/models"),
    ("text_gen_webui", None, "http://127.0.0.1:5000/v1/chat/completions", "http://127.0.0.1:5000/v1/models"),
    ("localai", "LOCALAI_API_KEY", "http://127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080/readyz"),
]


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for _, var, _, _ in PRESETS:
        if var:
            monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize(("kind", "var", "chat_url", "health_url"), PRESETS, ids=[p[0] for p in PRESETS])
def test_a_bare_entry_gets_the_services_urls_and_key(
    monkeypatch: pytest.MonkeyPatch, kind: str, var: str | None, chat_url: str, health_url: str
) -> None:
    if var:
        monkeypatch.setenv(var, f"key-for-{kind}")
    provider = create_provider(ProviderConfig(name="p", type=kind))
    assert isinstance(provider, OpenAIProvider)
    assert provider.url_for("m") == chat_url
    assert provider.health_url() == health_url
    expected_auth = {"Authorization": f"Bearer key-for-{kind}"} if var else {}
    assert {k: v for k, v in provider.session_headers().items() if k == "Authorization"} == expected_auth
    assert provider.validate_config() == []


def test_a_bare_cloud_entry_validates_cleanly_when_its_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk-test")
    config, problems = config_from_dict({"providers": {"groq": {"type": "groq", "models": ["llama-3.1-8b-instant"]}}})
    check(config, problems=problems)
    assert list(problems) == []


def test_an_explicit_entry_still_overrides_the_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", "from-env")
    provider = create_provider(
        ProviderConfig(
            name="p",
            type="mistral",
            base_url="https://eu.mistral.example/v1",
            health_endpoint="/ping",
            env_var="MY_KEY",
        )
    )
    assert isinstance(provider, OpenAIProvider)
    assert provider.url_for("m") == "https://eu.mistral.example/v1/chat/completions"
    assert provider.health_url() == "https://eu.mistral.example/ping"
    assert "Authorization" not in provider.session_headers()


def test_every_row_has_a_unique_name_and_a_factory() -> None:
    assert len(PROVIDER_TYPES) == len({row.name for row in PROVIDER_TYPES.values()})
    # A row named by "module:Class" is imported only when a config names it: a typo would
    # pass every other test, so every path is resolved here.
    assert all(issubclass(row.provider_class, Provider) for row in PROVIDER_TYPES.values())


ACME_ROW = """
from llmmux.providers.base import ProviderType
from llmmux.providers.openai import OpenAIProvider

ROW = ProviderType("acme", OpenAIProvider, "https://api.acme.example/v1", "ACME_API_KEY", "/v1/models")
"""


def test_an_installed_type_is_found_through_its_entry_point_and_only_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme_llmmux_row.py").write_text(ACME_ROW)
    info = tmp_path / "acme_llmmux-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-llmmux\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[llmmux.providers]\nacme = acme_llmmux_row:ROW\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    types = provider_types()
    assert "openai" in types and types["anthropic"] is PROVIDER_TYPES["anthropic"]
    assert "acme_llmmux_row" not in sys.modules  # built-in names never scan the installed packages
    assert types["acme"].base_url == "https://api.acme.example/v1"
    assert "acme" in list(types) and len(types) == len(PROVIDER_TYPES) + 1
    provider = create_provider(provider_config("a", {"type": "acme", "api_key": "k", "models": ["m"]}), types)
    assert provider.url_for("m") == "https://api.acme.example/v1/chat/completions"
    monkeypatch.delitem(sys.modules, "acme_llmmux_row")


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, openai_upstream: FakeOpenAI) -> Iterator[openai.OpenAI]:  # one test
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral-key")
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key")
    config = {
        "providers": {
            # Only what differs from the rows: where the (fake) service listens.
            "mistral": {"type": "mistral", "base_url": openai_upstream.url, "models": ["mistral-small-latest"]},
            "local": {"type": "vllm", "base_url": openai_upstream.url, "models": ["qwen"]},
        }
    }
    with Gateway(config) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk:
        yield sdk


def test_preset_entries_carry_their_key_and_their_services_parameters(
    service: openai.OpenAI, openai_upstream: FakeOpenAI
) -> None:
    raw = service.chat.completions.with_raw_response.create(
        model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}], seed=3, extra_body={"top_k": 5}
    )
    assert raw.headers["x-llmmux-dropped-params"] == "seed, top_k"
    sent = openai_upstream.last_request
    assert sent.headers["Authorization"] == "Bearer mistral-key"
    assert "seed" not in sent.json and "top_k" not in sent.json
    service.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "hi"}], extra_body={"top_k": 5})
    assert openai_upstream.last_request.headers["Authorization"] == "Bearer vllm-key"
    assert openai_upstream.last_request.json["top_k"] == 5
