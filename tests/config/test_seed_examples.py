"""Every configuration example in the seed documents parses, validates and routes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmmux.config import load_config
from llmmux.loading import check
from llmmux.router import Router

# ../shared/seeds/000_*: the provider registry as the seed describes it, with the health-check
# system and the v1.7 cloud fallback chains.
SEED_000_PROVIDERS = """
providers:
  ollama:
    type: ollama
    base_url: http://127.0.0.1:11434
    status: active
    description: General-purpose local model server with easy management
    features: [model management, CPU and GPU support]
    models:
      - name: llama3.1:latest
        size: 8B
        quantization: Q4_K_M
        context_length: 8192
        specialty: general
      - name: qwen2.5-coder:7b
        size: 7.6B
        quantization: Q4_K_M
        context_length: 32768
        specialty: code
    health_endpoint: /api/tags
  llama_cpp_python:
    type: openai_compatible
    base_url: http://127.0.0.1:8000
    status: active
    health_endpoint: /v1/models
    api_format: openai_compatible
    n_gpu_layers: -1
    n_ctx: 8192
    n_parallel: 4
    threads: 6
  llama_cpp_native:
    type: openai_compatible
    base_url: http://127.0.0.1:8080
    status: active
    health_endpoint: /v1/models
    api_format: openai_compatible
  vllm:
    type: vllm
    base_url: http://127.0.0.1:8001
    status: active
    health_endpoint: /v1/models
    api_format: openai_compatible
    models:
      - name: Qwen/Qwen2.5-Coder-7B-Instruct-AWQ
        size: 7B
        context_length: 4096
        specialty: code
  ollama_cloud:
    type: ollama
    base_url: https://ollama.com
    status: active
    env_var: OLLAMA_API_KEY
    health_endpoint: /api/tags
    models:
      - name: deepseek-v3.1:671b-cloud
        size: 671B
        specialty: reasoning
      - name: kimi-k2:1t-cloud
        size: 1T
        specialty: reasoning
      - name: gpt-oss:120b-cloud
        size: 120B
        specialty: chat
      - name: gpt-oss:20b-cloud
        size: 20B
        specialty: chat
  openai:
    type: openai
    base_url: https://api.openai.com/v1
    status: disabled
    env_var: OPENAI_API_KEY
    models: [gpt-4, gpt-3.5-turbo]
  anthropic:
    type: anthropic
    base_url: https://api.anthropic.com/v1
    status: disabled
    env_var: ANTHROPIC_API_KEY
    models: [claude-3-opus-20240229, claude-3-sonnet-20240229]
  custom_provider:
    type: openai_compatible
    base_url: http://localhost:9999
    status: active
    models:
      - custom-model-name
    health_endpoint: /v1/models
"""

SEED_000_MAPPINGS = """
exact_matches:
  "kimi-k2:1t":
    provider: ollama_cloud
    model: kimi-k2:1t-cloud
    priority: primary
    fallback: none
    description: Cloud-only, quality preservation
  "gpt-oss:120b":
    provider: ollama_cloud
    model: gpt-oss:120b-cloud
    fallback: [gpt-oss:20b, llama3.1:latest]
  "gpt-oss:20b":
    provider: ollama_cloud
    model: gpt-oss:20b-cloud
    fallback: llama3.1:latest
  "code":
    provider: vllm
    model: Qwen/Qwen2.5-Coder-7B-Instruct-AWQ
    fallback: qwen2.5-coder:7b
health_checks:
  interval_seconds: 60
  timeout_seconds: 5
  retry_attempts: 3
  cooldown_seconds: 300
"""

# ../shared/seeds/001_*: each snippet of the "adding a provider" guide.
SEED_001_TEXT_GEN = """
providers:
  text_gen_webui:
    type: openai_compatible
    base_url: http://127.0.0.1:5001
    status: active
    description: "Text Generation WebUI server for additional models"
    features:
      - GPU acceleration
      - Multiple model support
      - Web interface
      - LoRA support
    models:
      - name: mistral-7b-instruct
        size: "7B"
        context_length: 8192
        specialty: instruction_following
    health_endpoint: /v1/models
    api_format: openai_compatible
    docs: https://github.com/oobabooga/text-generation-webui
    location: ~/text-generation-webui
  ollama:
    type: openai_compatible
    base_url: http://127.0.0.1:11434/v1
    status: active
    models: [mistral-7b-instruct]
  llama_cpp_python:
    type: openai_compatible
    base_url: http://127.0.0.1:8000
  new_provider:
    type: openai_compatible
    base_url: http://127.0.0.1:7000
    status: testing
"""

SEED_001_MAPPINGS = """
exact_matches:
  "mistral-7b":
    provider: text_gen_webui
    model: mistral-7b-instruct
    priority: primary
    fallback: ollama
    description: "Mistral 7B Instruct via Text Gen WebUI"
  "new-model-name":
    provider: new_provider
    priority: primary
    fallback: text_gen_webui
    description: "Model description"
patterns:
  - pattern: "^new-provider/(.*)"
    provider: new_provider
    model: "\\\\1"
    fallback: ollama
    description: "Route all new-provider models"
capabilities:
  instruction_following:
    preferred_models:
      - mistral-7b
    provider: text_gen_webui
    routing_strategy: usage_based
redundant_models:
  "popular-model":
    providers:
      - provider: new_provider
        weight: 0.5
      - provider: text_gen_webui
        weight: 0.5
fallback_chains:
  new_provider_fallback:
    description: "Fallback for new provider failures"
    chain:
      - primary: new_provider
      - secondary: ollama
      - tertiary: llama_cpp_python
    retry_attempts: 3
    retry_delay_ms: 500
health_checks:
  new_provider:
    endpoint: http://127.0.0.1:7000/custom/health
    interval_seconds: 30
    timeout_seconds: 10
    retry_attempts: 2
rate_limit_settings:
  enabled: true
  limits:
    new_provider:
      rpm: 60
      tpm: 100000
model_size_routing:
  - size: "< 8B"
    provider: ollama
  - size: "8B - 13B"
    provider: new_provider
  - size: "> 13B"
    provider: text_gen_webui
"""

SEED_001_CLOUD_AND_CUSTOM = """
providers:
  openai:
    type: openai
    base_url: https://api.openai.com/v1
    status: active
    requires_api_key: true
    env_var: OPENAI_API_KEY
    models:
      - gpt-4
      - gpt-3.5-turbo
  custom_provider:
    type: custom
    base_url: http://custom-host:8081
    status: active
    custom_config:
      auth_method: bearer_token
      headers:
        Authorization: "Bearer ${CUSTOM_API_KEY}"
  local_gpu_server:
    type: openai_compatible
    base_url: http://127.0.0.1:8080
    status: active
    gpu_memory_utilization: 0.95
    features:
      - CUDA acceleration
      - FP16 inference
routing:
  exact_matches:
    "gpt-4":
      provider: openai
      priority: primary
      fallback: local_gpu_server
  capabilities:
    high_performance:
      provider: local_gpu_server
      routing_strategy: fastest_response
"""


def write(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def load_and_check(path: Path, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    config, problems = load_config(path, env=env or {})
    check(config, problems=problems)
    return config, problems


def test_seed_000_registry_parses_and_routes(tmp_path: Path) -> None:
    folder = write(tmp_path, {"providers.yaml": SEED_000_PROVIDERS, "model-mappings.yaml": SEED_000_MAPPINGS})
    config, problems = load_and_check(folder, env={"OLLAMA_API_KEY": "ok-key-123456789"})
    assert not problems.errors, problems.errors
    assert list(config.providers) == [
        "ollama",
        "llama_cpp_python",
        "llama_cpp_native",
        "vllm",
        "ollama_cloud",
        "openai",
        "anthropic",
        "custom_provider",
    ]
    qwen = config.providers["ollama"].models[1]
    assert (qwen.name, qwen.size, qwen.context_length, qwen.specialty) == ("qwen2.5-coder:7b", "7.6B", 32768, "code")
    assert qwen.extra == {"quantization": "Q4_K_M"}
    # Unknown provider keys are kept and reported, never a crash.
    assert config.providers["llama_cpp_python"].extra == {
        "n_gpu_layers": -1,
        "n_ctx": 8192,
        "n_parallel": 4,
        "threads": 6,
    }
    assert any(p.path == "providers.llama_cpp_python.n_gpu_layers" and p.severity == "warning" for p in problems)
    assert config.routing.exact["kimi-k2:1t"].no_fallback
    assert config.routing.settings.health.default.cooldown_s == 300

    router = Router(config)
    # Disabled templates are not routed.
    assert router.skipped["openai"] == "status is 'disabled'"
    with pytest.raises(Exception, match="gpt-4"):
        router.route("gpt-4")
    assert [str(c) for c in router.route("code").candidates] == ["vllm/Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"] + (
        [] if "ollama" not in router.providers else ["ollama/qwen2.5-coder:7b"]
    )
    assert [str(c) for c in router.route("custom_provider/custom-model-name").candidates] == [
        "custom_provider/custom-model-name"
    ]


def test_seed_000_quality_preserving_fallbacks(tmp_path: Path) -> None:
    folder = write(tmp_path, {"providers.yaml": SEED_000_PROVIDERS, "model-mappings.yaml": SEED_000_MAPPINGS})
    config, _ = load_and_check(folder, env={"OLLAMA_API_KEY": "ok-key-123456789"})
    router = Router(config)
    if "ollama_cloud" not in router.providers:
        pytest.skip("the ollama provider type is added by the native providers work")
    assert [str(c) for c in router.route("kimi-k2:1t").candidates] == ["ollama_cloud/kimi-k2:1t-cloud"]
    assert [str(c) for c in router.route("gpt-oss:120b").candidates] == [
        "ollama_cloud/gpt-oss:120b-cloud",
        "ollama_cloud/gpt-oss:20b-cloud",
        "ollama/llama3.1:latest",
    ]


def test_seed_001_guide_snippets(tmp_path: Path) -> None:
    folder = write(tmp_path, {"providers.yaml": SEED_001_TEXT_GEN, "model-mappings.yaml": SEED_001_MAPPINGS})
    config, problems = load_and_check(folder)
    assert not problems.errors, problems.errors
    chain = config.routing.chains["new_provider_fallback"]
    assert chain.chain == ["new_provider", "ollama", "llama_cpp_python"]
    assert (chain.retry_attempts, chain.retry_delay_ms) == (3, 500)
    settings = config.routing.settings  # every routing section, parsed when the config loaded
    assert settings.capabilities and settings.redundant and settings.size_bands
    assert settings.health.providers and settings.limits.providers
    router = Router(config)
    mistral = router.route("mistral-7b")
    assert [str(c) for c in mistral.candidates] == ["text_gen_webui/mistral-7b-instruct", "ollama/mistral-7b-instruct"]
    # A provider-level chain applies to a route whose primary is that provider and that has
    # no fallback of its own; the route's explicit fallback wins otherwise.
    assert [str(c) for c in router.route("new-model-name").candidates] == [
        "new_provider/new-model-name",
        "text_gen_webui/new-model-name",
    ]
    # `status: testing` is routed; the regex's group becomes the upstream model id.
    pattern = router.route("new-provider/llama-3-8b")
    assert [str(c) for c in pattern.candidates] == ["new_provider/llama-3-8b", "ollama/llama-3-8b"]
    via_chain = router.route("new_provider/anything")
    assert [str(c) for c in via_chain.candidates] == [
        "new_provider/anything",
        "ollama/anything",
        "llama_cpp_python/anything",
    ]
    assert via_chain.retry_attempts == 3


def test_seed_001_cloud_and_custom_providers(tmp_path: Path) -> None:
    (tmp_path / "llmmux.yaml").write_text(SEED_001_CLOUD_AND_CUSTOM)
    config, problems = load_and_check(tmp_path / "llmmux.yaml", env={"CUSTOM_API_KEY": "secret-value-1"})
    assert not problems.errors, problems.errors
    # The key is unset: a warning that names the variable, not an error.
    assert any("OPENAI_API_KEY" in p.message and p.severity == "warning" for p in problems)
    assert config.providers["custom_provider"].headers == {"Authorization": "Bearer secret-value-1"}
    assert any(p.path == "providers.local_gpu_server.gpu_memory_utilization" for p in problems)
    router = Router(config)
    # Without its key the cloud provider is skipped, and its route falls back at once.
    assert router.skipped["openai"] == "no API key: set OPENAI_API_KEY"
    assert [str(c) for c in router.route("gpt-4").candidates] == ["local_gpu_server/gpt-4"]
    config, problems = load_and_check(tmp_path / "llmmux.yaml", env={"OPENAI_API_KEY": "sk-abcdefghijklmnop"})
    assert not [p for p in problems if "OPENAI_API_KEY" in p.message]
    router = Router(config)
    assert [str(c) for c in router.route("gpt-4").candidates] == ["openai/gpt-4", "local_gpu_server/gpt-4"]
