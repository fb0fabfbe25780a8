"""Describe an MLX model folder (mlx-lm's layout) without loading it, as the pool needs.

An MLX model is a folder with `config.json` (Hugging Face's hyper-parameter names), the
weights in `*.safetensors` and the tokenizer files. The description (size, context, KV
cache shape, parameter count, quantization) comes from `config.json` and the safetensors
headers, so no weights are read and MLX need not be installed.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

from .gguf import GGUFError, GGUFInfo, read_info

_HEADER_LENGTH = struct.Struct("<Q")
MAX_HEADER = 100 * 1024 * 1024


def describe(path: str | os.PathLike[str]) -> GGUFInfo:
    """An MLX source as the pool sees it: a model folder, or a GGUF file MLX converts on load."""
    source = Path(path)
    if source.is_dir():
        return read_folder(source)
    return read_info(source)


def read_folder(folder: Path) -> GGUFInfo:
    """Read an MLX model folder's `config.json` and weight headers; raises GGUFError saying what is wrong."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise GGUFError(f"{folder} has no config.json: not an MLX model folder") from None
    except (OSError, ValueError) as exc:
        raise GGUFError(f"{folder}/config.json cannot be read: {exc}") from None
    if not isinstance(config, dict):
        raise GGUFError(f"{folder}/config.json is not a JSON object")
    text = config.get("text_config")  # multimodal checkpoints keep the language model's settings here
    settings = {**config, **text} if isinstance(text, dict) else config
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise GGUFError(f"{folder} has no *.safetensors weights")
    quantization = config.get("quantization") if isinstance(config.get("quantization"), dict) else None
    bits = int(quantization["bits"]) if quantization and isinstance(quantization.get("bits"), int) else None
    heads = _int(settings, "num_attention_heads", 1) or 1
    hidden = _int(settings, "hidden_size", 0) or 0
    head_dim = _int(settings, "head_dim")
    return GGUFInfo(
        path=str(folder),
        size=sum(file.stat().st_size for file in weights),
        architecture=str(settings.get("model_type", "unknown")),
        name=folder.name,
        context_length=_int(settings, "max_position_embeddings"),
        block_count=_int(settings, "num_hidden_layers", 0) or 0,
        embedding_length=hidden,
        head_count=heads,
        head_count_kv=_int(settings, "num_key_value_heads", heads) or heads,
        key_length=head_dim,
        value_length=head_dim,
        chat_template=_chat_template(folder),
        pooling_type=None,
        tensor_count=0,
        parameters=sum(_parameters(file, bits) for file in weights),
        file_type=None,
        quantization_label=f"{bits}bit" if bits else str(settings.get("torch_dtype") or settings.get("dtype") or "F16"),
    )


def _parameters(file: Path, bits: int | None) -> int:
    """Elements in a safetensors file, counting packed quantized weights at their unpacked size."""
    try:
        with file.open("rb") as f:
            length = _HEADER_LENGTH.unpack(f.read(8))[0]
            if length > MAX_HEADER:
                raise GGUFError(f"{file} is not a safetensors file")
            header = json.loads(f.read(length))
    except (OSError, struct.error, ValueError) as exc:
        raise GGUFError(f"{file} cannot be read: {exc}") from None
    total = 0
    for name, tensor in header.items():
        if name == "__metadata__" or name.endswith((".scales", ".biases")):
            continue
        count = 1
        for dim in tensor.get("shape", []):
            count *= int(dim)
        packed = bits and tensor.get("dtype") == "U32"
        total += count * (32 // bits) if packed and bits else count
    return total


def _chat_template(folder: Path) -> str | None:
    template = folder / "chat_template.jinja"
    if template.exists():
        return template.read_text()
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return None
    value = config.get("chat_template") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def _int(settings: dict[str, Any], key: str, default: int | None = None) -> int | None:
    value = settings.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
