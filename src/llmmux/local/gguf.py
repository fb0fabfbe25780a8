"""Just enough of the GGUF format to describe a model file before loading it.

Reading the header is cheap (no tensor data) and tells the pool what a model will cost
in memory (its file plus a KV-cache estimate) and the status table what it is. It also
turns a missing, truncated or foreign file into a clear error before an engine sees it:
engines report those as an opaque "failed to load".

Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
MAX_STRING = 64 * 1024 * 1024
MAX_COUNT = 1 << 32

_SCALARS: dict[int, struct.Struct] = {
    0: struct.Struct("<B"),
    1: struct.Struct("<b"),
    2: struct.Struct("<H"),
    3: struct.Struct("<h"),
    4: struct.Struct("<I"),
    5: struct.Struct("<i"),
    6: struct.Struct("<f"),
    7: struct.Struct("<?"),
    10: struct.Struct("<Q"),
    11: struct.Struct("<q"),
    12: struct.Struct("<d"),
}
_STRING, _ARRAY = 8, 9
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")

# Bytes per element of the KV cache for llama.cpp's cache types (block size included).
CACHE_TYPE_BYTES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}


# llama.cpp's `llama_ftype`, the value of general.file_type.
FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4",
}


class GGUFError(ValueError):
    """The file is missing, unreadable or not a GGUF model."""


@dataclass(frozen=True, slots=True)
class GGUFInfo:
    """What a GGUF header says about its model."""

    path: str
    size: int
    architecture: str
    name: str | None
    context_length: int | None
    block_count: int
    embedding_length: int
    head_count: int
    head_count_kv: int
    key_length: int | None
    value_length: int | None
    chat_template: str | None
    pooling_type: int | None
    tensor_count: int
    parameters: int
    file_type: int | None
    quantization_label: str | None = None
    """Set where the format names its quantization itself (MLX folders: `4bit`)."""

    @property
    def quantization(self) -> str:
        """`Q4_K_M`, `F16`...: the file's predominant weight type, as Ollama and llama.cpp name it."""
        if self.quantization_label:
            return self.quantization_label
        return FILE_TYPES.get(self.file_type, "unknown") if self.file_type is not None else "unknown"

    @property
    def parameter_size(self) -> str:
        """`135M`, `7.2B`: the parameter count as Ollama shows it."""
        if self.parameters >= 1e9:
            return f"{self.parameters / 1e9:.1f}B"
        return f"{self.parameters / 1e6:.0f}M" if self.parameters >= 1e6 else f"{self.parameters / 1e3:.0f}K"

    def kv_cache_bytes(self, n_ctx: int, cache_type_k: str = "f16", cache_type_v: str = "f16") -> int:
        """The KV cache for `n_ctx` tokens: layers x tokens x (K + V widths) x bytes per element."""
        head_k = self.key_length or (self.embedding_length // max(1, self.head_count))
        head_v = self.value_length or head_k
        k = head_k * self.head_count_kv * CACHE_TYPE_BYTES.get(cache_type_k, 2.0)
        v = head_v * self.head_count_kv * CACHE_TYPE_BYTES.get(cache_type_v, 2.0)
        return int(self.block_count * n_ctx * (k + v))

    @property
    def is_embedding_model(self) -> bool:
        return self.pooling_type is not None and self.pooling_type > 0


def read_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Read a GGUF file's metadata; raises GGUFError with a sentence saying what is wrong."""
    file = Path(path)
    try:
        size = file.stat().st_size
        with file.open("rb") as f:
            meta, tensors = _read_header(f, str(file))
            parameters = _count_parameters(f, tensors)
    except FileNotFoundError:
        raise GGUFError(f"{file} does not exist") from None
    except IsADirectoryError:
        raise GGUFError(f"{file} is a folder, not a GGUF file") from None
    except PermissionError:
        raise GGUFError(f"{file} is not readable (permission denied)") from None
    except (struct.error, EOFError, UnicodeDecodeError, MemoryError):
        raise GGUFError(f"{file} is truncated or corrupt (its GGUF header cannot be read)") from None
    return _info(str(file), size, meta, tensors, parameters)


def _count_parameters(f: IO[bytes], tensors: int) -> int:
    """Sum of the tensors' element counts, from the tensor infos after the metadata."""
    total = 0
    for _ in range(tensors):
        _read_string(f, keep=False)
        dims = _read(f, _U32)
        if dims > 8:
            raise EOFError
        count = 1
        for _ in range(dims):
            count *= _read(f, _U64)
        f.seek(4 + 8, os.SEEK_CUR)  # type, offset
        total += count
    return total


def _read_header(f: IO[bytes], name: str) -> tuple[dict[str, Any], int]:
    magic = f.read(4)
    if magic != MAGIC:
        raise GGUFError(f"{name} is not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    version = _read(f, _U32)
    if version not in SUPPORTED_VERSIONS:
        raise GGUFError(f"{name} is GGUF version {version}; supported: {', '.join(map(str, SUPPORTED_VERSIONS))}")
    tensors, count = _read(f, _U64), _read(f, _U64)
    if count > MAX_COUNT or tensors > MAX_COUNT:
        raise EOFError
    meta: dict[str, Any] = {}
    for _ in range(count):
        key = _read_string(f)
        meta[key] = _read_value(f, _read(f, _U32), keep=not key.startswith("tokenizer.ggml."))
    return meta, tensors


def _read(f: IO[bytes], fmt: struct.Struct) -> Any:
    data = f.read(fmt.size)
    if len(data) != fmt.size:
        raise EOFError
    return fmt.unpack(data)[0]


def _read_string(f: IO[bytes], keep: bool = True) -> str:
    length = _read(f, _U64)
    if length > MAX_STRING:
        raise EOFError
    if not keep:
        f.seek(length, os.SEEK_CUR)
        return ""
    data = f.read(length)
    if len(data) != length:
        raise EOFError
    return data.decode("utf-8")


def _read_value(f: IO[bytes], kind: int, keep: bool = True) -> Any:
    if kind == _STRING:
        return _read_string(f, keep)
    if kind == _ARRAY:
        item, count = _read(f, _U32), _read(f, _U64)
        if count > MAX_COUNT:
            raise EOFError
        if item in _SCALARS and not keep:
            f.seek(_SCALARS[item].size * count, os.SEEK_CUR)  # vocabularies: skip, never decode
            return None
        values = [_read_value(f, item, keep) for _ in range(count)]
        return values if keep else None
    fmt = _SCALARS.get(kind)
    if fmt is None:
        raise GGUFError(f"unknown GGUF value type {kind}")
    return _read(f, fmt)


def _info(path: str, size: int, meta: dict[str, Any], tensors: int, parameters: int) -> GGUFInfo:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise GGUFError(f"{path} has no general.architecture: not a model file")

    def arch_int(key: str, default: int | None = None) -> int | None:
        value = meta.get(f"{arch}.{key}", default)
        if isinstance(value, list):  # per-layer values (some hybrid models): the widest
            value = max(value) if value else default
        return int(value) if isinstance(value, int | float) else default

    heads = arch_int("attention.head_count", 1) or 1
    template = meta.get("tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        size=size,
        architecture=arch,
        name=meta.get("general.name") if isinstance(meta.get("general.name"), str) else None,
        context_length=arch_int("context_length"),
        block_count=arch_int("block_count", 0) or 0,
        embedding_length=arch_int("embedding_length", 0) or 0,
        head_count=heads,
        head_count_kv=arch_int("attention.head_count_kv", heads) or heads,
        key_length=arch_int("attention.key_length"),
        value_length=arch_int("attention.value_length"),
        chat_template=template if isinstance(template, str) else None,
        pooling_type=arch_int("pooling_type"),
        tensor_count=tensors,
        parameters=parameters,
        file_type=meta.get("general.file_type") if isinstance(meta.get("general.file_type"), int) else None,
    )
