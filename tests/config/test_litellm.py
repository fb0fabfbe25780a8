"""A LiteLLM proxy config, like the seeds' litellm-unified.yaml, works as --config unchanged."""

from __future__ import annotations

from pathlib import Path

from llmmux.config import load_config
from llmmux.loading import check
from llmmux.router import Router

# The shapes of seed 001's config/litellm-unified.yaml, plus LiteLLM's own docs' forms.
LITELLM = """
model_list:
  - model_name: mistral-7b-webui
    litellm_params:
      model: openai/mistral-7b-instruct
      api_base: http://127.0.0.1:5001/v1
      stream: true
    model_info:
      tags: ["instruct", "7b", "webui"]
      provider: text_gen_webui
      context_length: 8192
  - model_name: llama3.1-ollama
    litellm_params:
      model: openai/llama3.1:latest
      api_base: http://127.0.0.1:11434/v1
  - model_name: llama3.1-ollama
    litellm_params:
      model: openai/llama3.1:latest
      api_base: http://127.0.0.1:8080/v1
  - model_name: gpt-4
    litellm_params:
      model: gpt-4
      api_key: os.environ/OPENAI_API_KEY
router_settings:
  model_group_alias:
    instruction_tasks:
      - mistral-7b-webui
      - llama3.1-ollama
  fallbacks:
    - model: mistral-7b-webui
      fallback_models:
        - llama3.1-ollama
    - gpt-4: [llama3.1-ollama]
litellm_settings:
  drop_params: true
"""


def test_litellm_config_routes_like_litellm(tmp_path: Path) -> None:
    path = tmp_path / "litellm.yaml"
    path.write_text(LITELLM)
    config, problems = load_config(path, env={})
    check(config, problems=problems)
    assert not problems.errors, problems.errors
    router = Router(config)
    assert [str(c) for c in router.route("mistral-7b-webui").candidates] == [
        "openai_compatible-127.0.0.1-5001/mistral-7b-instruct",
        "openai_compatible-127.0.0.1-11434/llama3.1:latest",
        "openai_compatible-127.0.0.1-8080/llama3.1:latest",
    ]
    # Two deployments of one model_name back each other up.
    assert [c.provider.name for c in router.route("llama3.1-ollama").candidates] == [
        "openai_compatible-127.0.0.1-11434",
        "openai_compatible-127.0.0.1-8080",
    ]
    assert router.route("instruction_tasks").candidates[0].model == "mistral-7b-instruct"
    assert config.providers["openai_compatible-127.0.0.1-5001"].models[0].context_length == 8192


def test_fallback_cycles_do_not_loop_and_each_side_keeps_the_other(tmp_path: Path) -> None:
    path = tmp_path / "llmmux.yaml"
    path.write_text("""
providers:
  p: {type: openai_compatible, base_url: "http://127.0.0.1:9/v1"}
  q: {type: openai_compatible, base_url: "http://127.0.0.1:10/v1"}
routing:
  exact_matches:
    a: {provider: p, model: ma, fallback: b}
    b: {provider: q, model: mb, fallback: a}
""")
    config, _ = load_config(path, env={})
    router = Router(config)
    assert [str(c) for c in router.route("a").candidates] == ["p/ma", "q/mb"]
    assert [str(c) for c in router.route("b").candidates] == ["q/mb", "p/ma"]
