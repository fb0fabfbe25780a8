"""The GGUF header reader, on the generated model, SmolLM2 and broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmmux.local.gguf import GGUFError, read_info
from local import tiny_gguf as tiny


def test_the_header_describes_the_model(tiny_gguf: Path) -> None:
    info = read_info(tiny_gguf)
    assert info.architecture == "llama" and info.name == "tiny-llama"
    assert (info.block_count, info.embedding_length, info.head_count, info.head_count_kv) == (
        tiny.N_LAYER,
        tiny.N_EMBD,
        tiny.N_HEAD,
        tiny.N_HEAD_KV,
    )
    assert info.context_length == tiny.N_CTX_TRAIN
    assert info.chat_template == tiny.CHATML_TEMPLATE
    assert info.size == tiny_gguf.stat().st_size and info.quantization == "F32"
    assert info.tensor_count == 3 + 9 * tiny.N_LAYER and info.parameters > 100_000
    assert not info.is_embedding_model


def test_kv_cache_estimate_is_layers_times_tokens_times_kv_width(tiny_gguf: Path) -> None:
    info = read_info(tiny_gguf)
    kv_width = tiny.N_EMBD // tiny.N_HEAD * tiny.N_HEAD_KV
    assert info.kv_cache_bytes(1024) == tiny.N_LAYER * 1024 * 2 * kv_width * 2  # K and V, f16
    assert info.kv_cache_bytes(1024, "q8_0", "q8_0") == int(tiny.N_LAYER * 1024 * 2 * kv_width * 34 / 32)


def test_smollm2_metadata(smollm2_path: Path) -> None:
    info = read_info(smollm2_path)
    assert (info.architecture, info.block_count, info.head_count_kv, info.context_length) == ("llama", 30, 3, 8192)
    assert info.quantization == "Q4_1" and info.parameter_size == "135M"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04 a zip file", "not a GGUF file"),
        (b"GGUF\x09\x00\x00\x00" + b"\x00" * 16, "GGUF version 9"),
        (b"", "not a GGUF file"),
    ],
)
def test_foreign_files_are_named_as_such(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(content)
    with pytest.raises(GGUFError, match=message):
        read_info(path)


def test_a_truncated_file_is_reported_as_corrupt(tmp_path: Path, tiny_gguf: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(tiny_gguf.read_bytes()[:3000])  # ends inside the vocabulary
    with pytest.raises(GGUFError, match="truncated or corrupt"):
        read_info(path)


def test_missing_files_and_folders(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="does not exist"):
        read_info(tmp_path / "nope.gguf")
    with pytest.raises(GGUFError, match="is a folder"):
        read_info(tmp_path)
