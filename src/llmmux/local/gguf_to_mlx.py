"""Turn a llama-family GGUF file into an MLX model folder that mlx-lm loads.

MLX reads GGUF natively (`mx.load`), keeping Q4_0/Q4_1/Q8_0 weights quantized in its own
layout, so the same file serves both engines without re-quantizing: this module only
renames the tensors to mlx-lm's names, writes `config.json` from the GGUF's
hyper-parameters and rebuilds the tokenizer (`tokenizer.json`, chat template and special
tokens) from the GGUF's vocabulary, so nothing is fetched from a model hub.

llama.cpp's converter permutes the query and key rows of llama models for its
interleaved rotary embedding, which is mlx-lm's `rope_traditional`; the weights are used
as they are.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("llmmux.local")

ARCHITECTURES = ("llama", "mistral")
"""GGUF architectures with llama's tensor layout, which mlx-lm's `llama` model runs."""

_LAYER_TENSORS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_MODEL_TENSORS = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}

GROUP_SIZE = 32  # every GGUF block quantization MLX keeps (Q4_0, Q4_1, Q8_0) uses blocks of 32

# Pre-tokenizer split patterns by `tokenizer.ggml.pre`, as llama.cpp's vocabulary code has them.
_GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3_PATTERN = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE_TOKENIZERS = {
    "default": [_GPT2_PATTERN],
    "gpt2": [_GPT2_PATTERN],
    "smollm": [r"\p{N}", _GPT2_PATTERN],
    "llama-bpe": [_LLAMA3_PATTERN],
    "llama3": [_LLAMA3_PATTERN],
}

_CONTROL, _USER_DEFINED = 3, 4  # gguf token types that are special tokens


class ConversionError(ValueError):
    """The GGUF file cannot be run by MLX; the message says why and what to do instead."""


def cached_conversion(gguf_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str]) -> Path:
    """The MLX folder for `gguf_path` under `cache_dir`, converted now if the file is new or changed."""
    source = Path(gguf_path).resolve()
    stat = source.stat()
    key = hashlib.sha256(f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"{source.stem}-{key}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Convert beside the target and rename, so a crash never leaves a half-written model.
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        convert(source, scratch)
        try:
            scratch.rename(target)
        except OSError:  # another process finished the same conversion first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def convert(gguf_path: Path, out_dir: Path) -> None:
    """Write `config.json`, `model.safetensors` and the tokenizer files for `gguf_path` to `out_dir`."""
    import mlx.core as mx

    try:
        loaded: Any = mx.load(str(gguf_path), return_metadata=True)
        tensors, meta = loaded
    except (RuntimeError, ValueError) as exc:
        raise ConversionError(f"MLX cannot read {gguf_path}: {exc}") from None
    arch = _text(meta, "general.architecture")
    if arch not in ARCHITECTURES:
        raise ConversionError(
            f"{gguf_path.name} is a {arch!r} model; MLX runs GGUF files of the llama family "
            f"({', '.join(ARCHITECTURES)}). Use an MLX model folder (mlx_lm.convert) instead."
        )
    weights = _rename(tensors)
    config = _config(meta, arch, weights)
    mx.save_safetensors(str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    _tokenizer(meta).save_pretrained(str(out_dir))


def _rename(tensors: dict[str, Any]) -> dict[str, Any]:
    renamed = {}
    for name, tensor in tensors.items():
        parts = name.split(".")
        if parts[0] == "blk" and parts[2] in _LAYER_TENSORS:
            renamed[f"model.layers.{parts[1]}.{_LAYER_TENSORS[parts[2]]}.{parts[3]}"] = tensor
        elif parts[0] in _MODEL_TENSORS:
            renamed[f"{_MODEL_TENSORS[parts[0]]}.{parts[1]}"] = tensor
        elif name != "rope_freqs.weight":  # llama 3.1's rope scaling factors, which config.json carries
            raise ConversionError(f"unexpected tensor {name!r} in a llama-family GGUF")
    return renamed


def _config(meta: dict[str, Any], arch: str, weights: dict[str, Any]) -> dict[str, Any]:
    hidden = _int(meta, f"{arch}.embedding_length")
    heads = _int(meta, f"{arch}.attention.head_count")
    config: dict[str, Any] = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": _int(meta, f"{arch}.block_count"),
        "intermediate_size": _int(meta, f"{arch}.feed_forward_length"),
        "num_attention_heads": heads,
        "num_key_value_heads": _int(meta, f"{arch}.attention.head_count_kv", heads),
        "head_dim": _int(meta, f"{arch}.attention.key_length", hidden // heads),
        "rms_norm_eps": _float(meta, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
        "vocab_size": len(meta["tokenizer.ggml.tokens"]),
        "rope_theta": _float(meta, f"{arch}.rope.freq_base", 10000.0),
        "rope_traditional": True,
        "max_position_embeddings": _int(meta, f"{arch}.context_length", 4096),
        "tie_word_embeddings": "lm_head.weight" not in weights,
    }
    quantized = {
        name.removesuffix(".scales"): _bits(weights, name.removesuffix(".scales"))
        for name in weights
        if name.endswith(".scales")
    }
    if quantized:
        # mlx-lm quantizes the layers named here (per-layer bits: GGUF files mix Q4 and Q8).
        config["quantization"] = {
            "group_size": GROUP_SIZE,
            "bits": max(quantized.values()),
            **{name: {"group_size": GROUP_SIZE, "bits": bits} for name, bits in quantized.items()},
        }
    return config


def _bits(weights: dict[str, Any], layer: str) -> int:
    """Bits per weight of a quantized layer: packed uint32 columns over its input features."""
    packed, scales = weights[f"{layer}.weight"], weights[f"{layer}.scales"]
    return int(packed.shape[-1] * 32 // (scales.shape[-1] * GROUP_SIZE))


def _tokenizer(meta: dict[str, Any]) -> Any:
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    kind = _text(meta, "tokenizer.ggml.model")
    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    if kind == "gpt2":
        tokenizer = _bpe(meta, tokens)
    elif kind == "llama":
        tokenizer = _sentencepiece(meta, tokens)
    else:
        raise ConversionError(f"GGUF tokenizer {kind!r} is not supported; use an MLX model folder instead")
    assert isinstance(tokenizer, Tokenizer)
    types = [int(t) for t in _list(meta, "tokenizer.ggml.token_type")] or [1] * len(tokens)
    tokenizer.add_special_tokens(
        [
            AddedToken(tokens[i], special=True, normalized=False)
            for i, kind_of in enumerate(types)
            if kind_of in (_CONTROL, _USER_DEFINED)
        ]
    )

    def token(key: str) -> str | None:
        index = meta.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[int(index.item())] if index is not None else None

    template = meta.get("tokenizer.chat_template")
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        bos_token=token("bos"),
        eos_token=token("eos"),
        unk_token=token("unknown"),
        pad_token=token("padding"),
        chat_template=template if isinstance(template, str) else None,
        add_bos_token=_flag(meta, "tokenizer.ggml.add_bos_token"),
        clean_up_tokenization_spaces=False,
    )


def _bpe(meta: dict[str, Any], tokens: list[str]) -> Any:
    """Byte-level BPE (GPT-2, Llama 3, SmolLM...): vocabulary, merges and the split pattern."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    merges = [tuple(merge.split(" ", 1)) for merge in _list(meta, "tokenizer.ggml.merges")]
    pre = _text(meta, "tokenizer.ggml.pre") or "default"
    patterns = _PRE_TOKENIZERS.get(pre)
    if patterns is None:
        log.warning("GGUF pre-tokenizer %r is not known to llmmux; splitting text as GPT-2 does", pre)
        patterns = _PRE_TOKENIZERS["default"]
    tokenizer = Tokenizer(
        models.BPE(
            vocab={t: i for i, t in enumerate(tokens)}, merges=merges, ignore_merges=pre in ("llama-bpe", "llama3")
        )
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(p), behavior="isolated") for p in patterns]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _sentencepiece(meta: dict[str, Any], tokens: list[str]) -> Any:
    """SentencePiece (Llama 2, Mistral...): scored pieces with byte fallback, `▁` for spaces.

    llama.cpp merges adjacent pieces best score first; BPE with a merge for every split of
    every piece into two pieces, ranked by the merged piece's score, does the same.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers

    scores = [float(s) for s in _list(meta, "tokenizer.ggml.scores")] or [0.0] * len(tokens)
    vocab = {token: index for index, token in enumerate(tokens)}
    ranked = []
    for token, score in zip(tokens, scores, strict=True):
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                ranked.append((-score, vocab[left], vocab[right], left, right))
    merges = [(left, right) for *_, left, right in sorted(ranked)]
    unknown = meta.get("tokenizer.ggml.unknown_token_id")
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            byte_fallback=True,
            fuse_unk=True,
            unk_token=tokens[int(unknown.item())] if unknown is not None else None,
        )
    )
    prefix = [normalizers.Prepend("\u2581")] if _flag(meta, "tokenizer.ggml.add_space_prefix", True) else []
    tokenizer.normalizer = normalizers.Sequence([*prefix, normalizers.Replace(" ", "\u2581")])
    # The decoder llama's tokenizer.json has, which mlx-lm recognises for streaming detokenization.
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return tokenizer


def _text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) else ""


def _list(meta: dict[str, Any], key: str) -> list[Any]:
    value = meta.get(key)
    if value is None:
        return []
    return value.tolist() if hasattr(value, "tolist") else list(value)


def _int(meta: dict[str, Any], key: str, default: int | None = None) -> int:
    value = meta.get(key)
    if value is None:
        if default is None:
            raise ConversionError(f"the GGUF metadata has no {key}")
        return default
    return int(value.item())


def _float(meta: dict[str, Any], key: str, default: float) -> float:
    value = meta.get(key)
    return float(value.item()) if value is not None else default


def _flag(meta: dict[str, Any], key: str, default: bool = False) -> bool:
    value = meta.get(key)
    return bool(value.item()) if value is not None else default
