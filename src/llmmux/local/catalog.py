"""The settings of an in-process model provider: its pool limits and its models.

    providers:
      local:
        type: llama_cpp
        models_dir: ~/models          # every *.gguf inside becomes a model named after its file
        max_loaded_models: 2
        max_memory: 12GB              # file sizes plus KV-cache estimates
        keep_alive: 5m                # per model too; 0 unloads at once, -1 pins
        preload: [qwen-7b]
        n_ctx: 8192                   # engine options: defaults for every model...
        models:
          - name: qwen-7b
            path: ~/models/qwen2.5-7b-instruct-q4_k_m.gguf
            n_gpu_layers: -1          # ...and per model
            chat_template: chatml
            sampling: {repeat_penalty: 1.05}   # the model's own defaults; a request's values win
            loop_guard: {repeats: 4}  # a reply whose tail repeats ends there (on by default; false: off)
          - name: nomic-embed
            path: ~/models/nomic-embed-text-v1.5.f16.gguf   # an embedding model by its file...
          - name: qwen-embed
            path: ~/models/qwen2.5-0.5b-instruct-q8_0.gguf
            embedding: true           # ...or by config: serves /v1/embeddings, not chat
            pooling: last             # mean (default), cls, last or rank; default: the file's

The option names are llama.cpp's and the seeds' (`model_path`, `n_parallel`, `threads`,
`use_mmap`, `use_mlock`, `chat_format` are accepted as aliases).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.fields import FieldReader
from ..config.model import ModelEntry, ProviderConfig, TypedOptions
from ..config.problems import Problems
from .engines.base import DEFAULT_PARALLEL, POOLING_TYPES, ModelSpec
from .gguf import CACHE_TYPE_BYTES
from .pool_policy import DEFAULT_KEEP_ALIVE_S, DEFAULT_MAX_LOADED_MODELS, Limits
from .sampling import parse_loop_guard, parse_sampling

DEFAULT_MAX_QUEUE = 64
DEFAULT_QUEUE_TIMEOUT_S = 600.0
ENGINES = ("auto", "xllamacpp", "llama_cpp_python", "mlx")

ENGINE_KEYS = frozenset(
    [
        "n_ctx",
        "n_gpu_layers",
        "n_threads",
        "n_batch",
        "flash_attn",
        "cache_type",
        "cache_type_k",
        "cache_type_v",
        "mmap",
        "mlock",
        "chat_template",
        "parallel",
        "max_output_tokens",
        "sampling",
        "loop_guard",
        "options",
    ]
)
MLX_KEYS = frozenset(
    ["max_kv_size", "kv_bits", "kv_group_size", "quantized_kv_start", "draft_model", "num_draft_tokens", "cache_dir"]
)
"""mlx-lm's generation options (KV-cache size and quantization, speculative decoding) and
where GGUF files converted for MLX are kept."""
EMBEDDING_KEYS = frozenset({"embedding", "pooling"})
"""Embedding models: llama.cpp's engines only."""
MODEL_KEYS = ENGINE_KEYS | MLX_KEYS | EMBEDDING_KEYS | {"path", "keep_alive", "memory"}
ALIASES = {
    "model_path": "path",
    "n_parallel": "parallel",
    "threads": "n_threads",
    "use_mmap": "mmap",
    "use_mlock": "mlock",
    "chat_format": "chat_template",
    "type_k": "cache_type_k",
    "type_v": "cache_type_v",
}


class LocalConfigError(ValueError):
    """Bad local-model settings; `problems` are (key path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))
        self.problems = problems


@dataclass(slots=True)
class LocalSettings(TypedOptions):
    engine: str = "auto"
    models_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    keep_alive: float = DEFAULT_KEEP_ALIVE_S
    preload: list[str] = field(default_factory=list)
    max_queue: int = DEFAULT_MAX_QUEUE
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT_S
    models: dict[str, ModelSpec] = field(default_factory=dict)


def read_settings(config: ProviderConfig, reader: FieldReader, path: str, engine: str | None = None) -> LocalSettings:
    """A provider entry's local settings and its models, each problem reported to `reader`
    under `path` (the entry's key path) and the default kept.

    `engine` fixes the engine (`type: mlx` is always MLX); otherwise the entry's `engine:` picks it.
    Models found in `models_dir` are added to the entry's model list, so the route table
    serves them like any listed model.
    """
    extra = _canonical(config.extra)
    settings = LocalSettings()
    settings.engine = engine or reader.field(extra, path, "engine", reader.one_of(ENGINES), "auto")
    if extra.get("models_dir") is not None:
        settings.models_dir = Path(os.path.expanduser(str(extra["models_dir"])))
    settings.limits = Limits(
        max_loaded_models=reader.field(
            extra, path, "max_loaded_models", reader.positive_integer, DEFAULT_MAX_LOADED_MODELS
        ),
        max_memory=reader.field(extra, path, "max_memory", reader.size, None),
    )
    settings.keep_alive = reader.field(extra, path, "keep_alive", reader.lifetime, DEFAULT_KEEP_ALIVE_S)
    settings.max_queue = reader.field(extra, path, "max_queue", reader.integer, DEFAULT_MAX_QUEUE)
    settings.queue_timeout = reader.field(extra, path, "queue_timeout", reader.lifetime, DEFAULT_QUEUE_TIMEOUT_S)
    defaults = _engine_options(extra, settings.engine, path, reader)
    for entry in _model_entries(config, settings.models_dir, folders=settings.engine == "mlx"):
        spec = _spec(entry, settings, defaults, f"{path}.models.{entry.name}", reader)
        if spec is not None:
            settings.models[spec.name] = spec
    settings.preload = _preload(extra, settings.models, path, reader)
    return settings


def settings_from_config(config: ProviderConfig, engine: str | None = None) -> LocalSettings:
    """`read_settings` for an entry that skipped validation (a config built in code); raises
    LocalConfigError listing every problem."""
    reader = FieldReader(config.name, Problems())
    settings = read_settings(config, reader, f"providers.{config.name}", engine)
    if reader.problems:
        raise LocalConfigError([(p.path, p.message) for p in reader.problems])
    return settings


def discover(models_dir: Path, *, folders: bool = False) -> dict[str, Path]:
    """GGUF files under `models_dir`, named after their file (without `.gguf`), and with
    `folders` the MLX model folders in it (those with a `config.json`), named after the folder.

    Multimodal projectors and every shard but the first of a split model are not models.
    """
    found: dict[str, Path] = {}
    if not models_dir.is_dir():
        return found
    if folders:
        for config in sorted(models_dir.glob("*/config.json")):
            found.setdefault(config.parent.name, config.parent)
    for file in sorted(models_dir.rglob("*.gguf")):
        stem = file.name[: -len(".gguf")]
        if stem.lower().startswith("mmproj") or ("-of-" in stem and not stem.split("-of-")[0].endswith("00001")):
            continue
        found.setdefault(stem, file)
    return found


def _model_entries(config: ProviderConfig, models_dir: Path | None, *, folders: bool) -> list[ModelEntry]:
    """Configured models plus the discovered ones, which are added to the config's model list
    so the route table serves them like any listed model."""
    if models_dir is not None:
        listed = set(config.model_names())
        for name, file in discover(models_dir, folders=folders).items():
            if name not in listed:
                config.models.append(ModelEntry(name=name, extra={"path": str(file)}))
    return config.models


def _spec(
    entry: ModelEntry, settings: LocalSettings, defaults: dict[str, Any], path: str, reader: FieldReader
) -> ModelSpec | None:
    extra = _canonical(entry.extra)
    unknown = sorted(set(extra) - MODEL_KEYS)
    if unknown:
        reader.error(path, f"unknown model option(s) {', '.join(unknown)}; known: {', '.join(sorted(MODEL_KEYS))}")
    mlx = settings.engine == "mlx"
    file = _model_path(entry.name, extra.get("path"), settings.models_dir, folders=mlx)
    if file is None:
        what = "an MLX model folder or a GGUF file" if mlx else "a GGUF file"
        reader.error(path, f"expected a 'path' to {what} (or set models_dir on the provider)")
        return None
    options = {**defaults, **_engine_options(extra, settings.engine, path, reader)}
    for merged in ("options", "sampling"):  # mappings: a model's entries go over the provider's
        if merged in defaults and merged in options:
            options[merged] = {**defaults[merged], **options[merged]}
    if entry.context_length and "n_ctx" not in options:
        options["n_ctx"] = entry.context_length
    keep_alive = reader.field(extra, path, "keep_alive", reader.lifetime, None)
    memory = reader.field(extra, path, "memory", reader.size, None)
    if mlx and extra.get("embedding"):
        reader.error(f"{path}.embedding", "embedding models run on llama.cpp's engines: use `type: llama_cpp`")
    return ModelSpec(
        name=entry.name,
        path=str(file),
        keep_alive=keep_alive,
        memory=memory,
        embedding=reader.field(extra, path, "embedding", reader.boolean, False),
        pooling=_pooling(extra, path, reader),
        **options,
    )


def _pooling(extra: Mapping[str, Any], path: str, reader: FieldReader) -> str | None:
    value = extra.get("pooling")
    if value is None or value in POOLING_TYPES:
        return value
    why = " (one vector per token, which the embeddings APIs cannot return)" if value == "none" else ""
    reader.error(f"{path}.pooling", f"expected one of {', '.join(POOLING_TYPES)}, got {value!r}{why}")
    return None


def _model_path(name: str, value: Any, models_dir: Path | None, *, folders: bool) -> Path | None:
    if value is not None:
        file = Path(os.path.expanduser(str(value)))
        return file if file.is_absolute() or models_dir is None else models_dir / file
    if models_dir is not None:
        return models_dir / name if folders and (models_dir / name).is_dir() else models_dir / f"{name}.gguf"
    return None


def _engine_options(extra: Mapping[str, Any], engine: str, path: str, reader: FieldReader) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key in ("n_ctx", "n_gpu_layers", "n_threads", "n_batch", "parallel", "max_output_tokens"):
        if extra.get(key) is not None:
            minimum = -1 if key == "n_gpu_layers" else 1
            options[key] = reader.field(extra, path, key, reader.at_least(minimum), 0)
    for key in ("flash_attn", "mmap", "mlock"):
        if extra.get(key) is not None:
            if isinstance(extra[key], bool):
                options[key] = extra[key]
            elif key == "flash_attn" and extra[key] == "auto":
                options[key] = None
            else:
                reader.boolean(f"{path}.{key}", extra[key])  # reports what was expected
    for key in ("cache_type_k", "cache_type_v"):
        value = extra.get(key, extra.get("cache_type"))
        if value is not None:
            options[key] = reader.field({key: str(value).lower()}, path, key, reader.one_of(CACHE_TYPE_BYTES), "f16")
    if extra.get("chat_template") is not None:
        options["chat_template"] = str(extra["chat_template"])
    if extra.get("sampling") is not None:
        options["sampling"] = parse_sampling(extra["sampling"], engine, f"{path}.sampling", reader)
    if extra.get("loop_guard") is not None:
        options["loop_guard"] = parse_loop_guard(extra["loop_guard"], f"{path}.loop_guard", reader)
    for key in ("max_kv_size", "kv_bits", "kv_group_size", "quantized_kv_start", "num_draft_tokens"):
        if extra.get(key) is not None:
            options.setdefault("options", {})[key] = reader.field(extra, path, key, reader.positive_integer, 0)
    for key in ("draft_model", "cache_dir"):
        if extra.get(key) is not None:
            options.setdefault("options", {})[key] = os.path.expanduser(str(extra[key]))
    if engine != "mlx":
        for key in sorted(MLX_KEYS & set(extra)):
            reader.error(f"{path}.{key}", "is an MLX option: it needs `type: mlx` or `engine: mlx`")
    if extra.get("options") is not None:
        if isinstance(extra["options"], dict):
            options["options"] = {**options.get("options", {}), **extra["options"]}
        else:
            reader.error(f"{path}.options", "expected a mapping of llama.cpp parameter names to values")
    return options


def _preload(extra: Mapping[str, Any], models: Mapping[str, ModelSpec], path: str, reader: FieldReader) -> list[str]:
    value = extra.get("preload")
    if value is None:
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        reader.error(f"{path}.preload", "expected a model name or a list of them")
        return []
    for name in names:
        if name not in models:
            reader.error(f"{path}.preload", f"{name!r} is not one of this provider's models")
    return [n for n in names if n in models]


def _canonical(extra: Mapping[str, Any]) -> dict[str, Any]:
    return {ALIASES.get(k, k): v for k, v in extra.items()}


__all__ = [
    "DEFAULT_PARALLEL",
    "LocalConfigError",
    "LocalSettings",
    "discover",
    "read_settings",
    "settings_from_config",
]
