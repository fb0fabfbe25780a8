"""`type: mlx`: MLX models run inside llmmux through mlx-lm, loaded on demand into the model pool.

The same provider as `type: llama_cpp` with the engine fixed to MLX: models are MLX
folders (or llama-family GGUF files, converted once), listed under `models:` or found in
`models_dir`; pool limits, keep-alive, preloading and `llmmux ps` work alike.

    providers:
      mlx:
        type: mlx
        models_dir: ~/mlx-models        # every folder with a config.json becomes a model
        cache_dir: ~/.cache/llmmux/mlx  # where GGUF files are converted for MLX
        kv_bits: 8                      # mlx-lm options: quantized KV cache, max_kv_size,
        models:                         # draft_model + num_draft_tokens (speculative decoding)
          - name: qwen-mlx
            path: ~/mlx-models/Qwen2.5-7B-Instruct-4bit
"""

from __future__ import annotations

from typing import ClassVar

from .llama_cpp import LlamaCppProvider


class MLXProvider(LlamaCppProvider):
    engine: ClassVar[str | None] = "mlx"
