"""The one table of provider types. A compatible service is a row; a native API is a module.

Third-party types plug in through the `llmmux.providers` entry point group: each entry
point loads a `ProviderType`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import params
from ..config.loader import provider_config
from ..config.model import ProviderConfig, Secret
from ..config.problems import ConfigError, Problem
from ..wire.anthropic import API_VERSION
from .anthropic import AnthropicProvider
from .base import Provider, ProviderType
from .http_provider import HTTPProvider
from .llama_server import LlamaServerProvider
from .ollama import OllamaProvider
from .openai import OpenAIProvider
from .transport import Transport

ENTRY_POINT_GROUP = "llmmux.providers"

# The wire formats the doors speak (OpenAI, Anthropic, Ollama) are imported with the server
# anyway; every other native API, and the in-process engines, by path when a config names it.
_AZURE = "llmmux.providers.azure:AzureOpenAIProvider"
_BEDROCK = "llmmux.providers.bedrock:BedrockProvider"
_GEMINI = "llmmux.providers.gemini:GeminiProvider"
_LLAMA_CPP = "llmmux.providers.llama_cpp:LlamaCppProvider"
_MLX = "llmmux.providers.mlx:MLXProvider"
_OPENROUTER = "llmmux.providers.openrouter:OpenRouterProvider"
_TOGETHER = "llmmux.providers.together:TogetherProvider"


# Generation parameters each service honours (see llmmux.params); the rest are dropped with a
# warning header. Unknown servers (`openai_compatible`, `custom`) get everything passed through.
_LOCAL = params.ALL - {params.NUM_CTX}  # OpenAI-format local servers take top_k, not a per-request context size

# Base URLs, key variables and health endpoints as each service documents them. A health
# endpoint is relative to the server root: the base URL without a trailing `/v1`.
_ROWS = [
    # OpenAI and any server that speaks its chat completions API.
    ProviderType(
        "openai",
        OpenAIProvider,
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        "/v1/models",
        cloud=True,
        params=params.OPENAI,
        # o-series, gpt-5 (not gpt-5-chat) and codex models reason; gpt-4o and gpt-4.1 refuse the field.
        reasoning_models=r"(o\d|gpt-5(?!-chat)|codex|gpt-oss)",
    ),
    ProviderType("openai_compatible", OpenAIProvider, "", None, "/v1/models"),
    ProviderType("custom", OpenAIProvider, "", None, "/v1/models"),
    # Anthropic's Messages API: its own wire format (llmmux.wire.anthropic); no n, seed or penalties.
    ProviderType(
        "anthropic",
        AnthropicProvider,
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        "/v1/models",
        cloud=True,
        headers={"anthropic-version": API_VERSION},
        params=frozenset({"temperature", "top_p", "top_k", "max_tokens", "stop"}),
        forward_headers=("anthropic-beta", "anthropic-version"),
    ),
    # Local servers at their usual ports; a key is optional, read from the variable the server itself reads.
    ProviderType("vllm", OpenAIProvider, "http://127.0.0.1:8000/v1", "VLLM_API_KEY", "/health", params=_LOCAL),
    ProviderType(
        "llama_cpp_server", LlamaServerProvider, "http://127.0.0.1:8080/v1", "LLAMA_API_KEY", "/health", params=_LOCAL
    ),
    ProviderType("llama_cpp_python", OpenAIProvider, "http://127.0.0.1:8000/v1", None, "/v1/models", params=_LOCAL),
    ProviderType("lm_studio", OpenAIProvider, "http://127.0.0.1:1234/v1", "LM_API_TOKEN", "/v1/models", params=_LOCAL),
    ProviderType("text_gen_webui", OpenAIProvider, "http://127.0.0.1:5000/v1", None, "/v1/models", params=_LOCAL),
    ProviderType("localai", OpenAIProvider, "http://127.0.0.1:8080/v1", "LOCALAI_API_KEY", "/readyz", params=_LOCAL),
    # GGUF models loaded into llmmux itself (xllamacpp or llama-cpp-python).
    ProviderType("llama_cpp", _LLAMA_CPP, in_process=True),
    # MLX models (folders, or llama-family GGUF files) loaded into llmmux through mlx-lm; one choice per request.
    ProviderType("mlx", _MLX, in_process=True, params=params.ALL - {"n", params.NUM_CTX}),
    # Cloud services with OpenAI-compatible APIs.
    ProviderType(
        "groq",
        OpenAIProvider,
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        "/v1/models",
        cloud=True,
        params=params.OPENAI,
    ),
    # Together's model listing carries each model's price, which billing and routing read live.
    ProviderType(
        "together",
        _TOGETHER,
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "/v1/models",
        cloud=True,
        params=_LOCAL,
    ),
    # DeepSeek documents its API at the root (`/v1` is an alias); it takes no `n` or `seed`.
    ProviderType(
        "deepseek",
        OpenAIProvider,
        "https://api.deepseek.com",
        "DEEPSEEK_API_KEY",
        "/models",
        cloud=True,
        root_api_path="",
        params=params.OPENAI - {"n", "seed"},
    ),
    # Mistral rejects unknown fields; its seed is called `random_seed`.
    ProviderType(
        "mistral",
        OpenAIProvider,
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        "/v1/models",
        cloud=True,
        params=params.OPENAI - {"seed"},
    ),
    ProviderType(
        "fireworks",
        OpenAIProvider,
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        "/v1/models",
        cloud=True,
        params=_LOCAL,
    ),
    ProviderType(
        "xai", OpenAIProvider, "https://api.x.ai/v1", "XAI_API_KEY", "/v1/models", cloud=True, params=params.OPENAI
    ),
    # Perplexity serves chat at the root and documents no `stop`, `n` or `seed`.
    ProviderType(
        "perplexity",
        OpenAIProvider,
        "https://api.perplexity.ai",
        "PERPLEXITY_API_KEY",
        "/v1/models",
        cloud=True,
        root_api_path="",
        params=frozenset({"temperature", "top_p", "top_k", "max_tokens", "presence_penalty", "frequency_penalty"}),
    ),
    # Native APIs.
    ProviderType(
        "gemini",
        _GEMINI,
        "https://generativelanguage.googleapis.com/v1beta",
        "GEMINI_API_KEY",
        "/models",
        cloud=True,
        alt_env_vars=("GOOGLE_API_KEY",),
    ),
    # Azure's base_url is the resource endpoint; the key may be an Entra ID token instead.
    ProviderType(
        "azure",
        _AZURE,
        "",
        "AZURE_OPENAI_API_KEY",
        None,
        cloud=True,
        credential_options=("azure_ad_token",),
    ),
    # Signed with AWS credentials (SigV4) unless a Bedrock API key is set, so no key is required.
    ProviderType("bedrock", _BEDROCK, "https://bedrock-runtime.{region}.amazonaws.com", "AWS_BEARER_TOKEN_BEDROCK"),
    ProviderType(
        "openrouter", _OPENROUTER, "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "/v1/models", cloud=True
    ),
    # Ollama's native API: a local server, or Ollama Cloud with a Bearer key (options take all but `n`).
    ProviderType("ollama", OllamaProvider, "http://127.0.0.1:11434", None, "/api/tags", params=params.ALL - {"n"}),
    ProviderType(
        "ollama_cloud",
        OllamaProvider,
        "https://ollama.com",
        "OLLAMA_API_KEY",
        "/api/tags",
        cloud=True,
        params=params.ALL - {"n"},
    ),
]

PROVIDER_TYPES: dict[str, ProviderType] = {row.name: row for row in _ROWS}


class ProviderTypes(Mapping[str, ProviderType]):
    """Built-in rows plus any installed through entry points (built-ins win on a clash).

    The installed packages are scanned for entry points only when a name is not built in,
    or when every type is listed: the scan reads each distribution's metadata (tens of ms
    in a large environment), and a config of built-in types never needs it.
    """

    def __init__(self) -> None:
        self._installed: dict[str, ProviderType] | None = None

    def _all(self) -> dict[str, ProviderType]:
        if self._installed is None:
            from importlib.metadata import entry_points

            found = dict(PROVIDER_TYPES)
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name not in found:
                    row = ep.load()
                    if isinstance(row, ProviderType):
                        found[ep.name] = row
            self._installed = found
        return self._installed

    def __getitem__(self, name: str) -> ProviderType:
        row = PROVIDER_TYPES.get(name)
        return row if row is not None else self._all()[name]

    def __contains__(self, name: object) -> bool:
        return name in PROVIDER_TYPES or name in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def provider_types() -> ProviderTypes:
    """Every provider type: the built-in rows, then entry points (scanned on first need)."""
    return ProviderTypes()


def create_provider(
    config: ProviderConfig | str,
    types: Mapping[str, ProviderType] | None = None,
    *,
    name: str | None = None,
    transport: Transport | None = None,
    **settings: Any,
) -> Provider:
    """Build one provider, from a parsed config entry or from a type name and settings.

    >>> provider = create_provider("openai", api_key="sk-...")                      # doctest: +SKIP
    >>> provider = create_provider("openai_compatible", base_url="http://127.0.0.1:8080/v1")  # doctest: +SKIP
    >>> reply = await provider.chat("gpt-4o-mini", [{"role": "user", "content": "hi"}])

    `transport` replaces an HTTP provider's client, e.g. with `MockTransport(handler)` in a test.
    """
    types = types if types is not None else provider_types()
    if isinstance(config, str):
        config = provider_config(name or config, {"type": config, **settings})
    if config.type not in types:
        raise ConfigError(
            [
                Problem(
                    "error",
                    "<arguments>",
                    "type",
                    f"provider type {config.type!r} is not supported (supported: {', '.join(sorted(types))})",
                )
            ]
        )
    kind = types[config.type]
    if config.api_key is None and not config.env_var:
        key = kind.key_from_env()
        if key:
            config.api_key = Secret(key)
    cls = kind.provider_class
    if transport is not None:
        if not issubclass(cls, HTTPProvider) or config.launch is not None:
            raise TypeError(
                f"a {config.type!r} provider{' with launch' if config.launch is not None else ''} takes no transport"
            )
        return cls(config, kind, transport=transport)
    if config.launch is not None:  # a server llmmux runs itself
        from .managed import create_managed

        return create_managed(config, kind)
    return cls(config, kind)
