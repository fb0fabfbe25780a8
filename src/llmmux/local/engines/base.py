"""What an in-process engine offers: load a GGUF file, then chat or embed in OpenAI's wire format.

Engines speak OpenAI's chat completion and embeddings JSON in both directions (llama.cpp's
server code, which xllamacpp wraps, already does), so the provider reuses `wire/openai.py`
for all translation and an engine adapter is only the calls into its library.

A model is loaded either for chat or for embeddings (`ModelSpec.embeds`): llama.cpp pools
one vector per input only in embedding mode, and a model meant for embeddings has no use
as a chat model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import msgspec

from ..bridge import Emit
from ..gguf import GGUFInfo
from ..repetition import LoopGuard

DEFAULT_N_CTX = 4096  # Ollama's default; a model's full trained context can cost gigabytes of KV cache
DEFAULT_PARALLEL = 4  # llama-server's default slot count

# llama.cpp's `llama_pooling_type`: how an embedding model turns token vectors into one.
# "none" (one vector per token) is missing on purpose: OpenAI's embeddings API cannot carry it.
POOLING_TYPES = {"mean": 1, "cls": 2, "last": 3, "rank": 4}
DEFAULT_POOLING = "mean"  # for models whose file names none (chat models loaded with `embedding: true`)


class EngineUnavailable(RuntimeError):
    """The engine's library is not installed or cannot be imported on this machine."""


class EngineError(RuntimeError):
    """The engine failed to load or run a model; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """One in-process model: its file and how to load it (the seeds' GGUF options)."""

    name: str
    path: str
    n_ctx: int | None = None
    n_gpu_layers: int | None = None
    n_threads: int | None = None
    n_batch: int | None = None
    flash_attn: bool | None = None
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    mmap: bool = True
    mlock: bool = False
    chat_template: str | None = None
    parallel: int = DEFAULT_PARALLEL
    max_output_tokens: int | None = None
    """The most tokens one reply may generate (a request's own max_tokens is lowered to it);
    None: the context left after the prompt, where every engine stops anyway."""
    sampling: dict[str, Any] = field(default_factory=dict)
    """Sampling fields (llama.cpp's request names) added to every chat request that does not
    set them itself: the model's own defaults, e.g. a repeat penalty for a small model."""
    loop_guard: LoopGuard | None = field(default_factory=LoopGuard)
    """When a reply counts as looping and is ended there (None: never); see `engines/loop_guard.py`."""
    embedding: bool = False
    pooling: str | None = None
    keep_alive: float | None = None
    memory: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def context_size(self, info: GGUFInfo) -> int:
        """The context to allocate: as configured, else the default capped at what the model was trained on."""
        if self.n_ctx:
            return self.n_ctx
        return min(DEFAULT_N_CTX, info.context_length or DEFAULT_N_CTX)

    def embeds(self, info: GGUFInfo) -> bool:
        """Whether the model is loaded for embeddings: its file says it is an embedding model
        (it names a pooling type), or its config sets `embedding: true`."""
        return self.embedding or info.is_embedding_model

    def pooling_type(self, info: GGUFInfo) -> int | None:
        """The pooling to load an embedding model with; None leaves the file's own."""
        if self.pooling is not None:
            return POOLING_TYPES[self.pooling]
        return None if info.is_embedding_model else POOLING_TYPES[DEFAULT_POOLING]

    def estimate_memory(self, info: GGUFInfo) -> int:
        """Weights (the file) plus the KV cache: what the pool budgets for this model."""
        if self.memory is not None:
            return self.memory
        return info.size + info.kv_cache_bytes(self.context_size(info), self.cache_type_k, self.cache_type_v)


class EngineModel(Protocol):
    """A loaded model. Methods block; the pool calls them on executor threads."""

    parallel: int
    """How many requests it runs at once (1 where the engine is not thread-safe)."""

    tools: bool | None
    """Whether its chat template renders tools (None: the engine cannot tell). Where it
    does not (False), the loader wraps the model in `tool_prompt.ToolPromptModel`."""

    schema_output: bool
    """Whether it can constrain its output to a JSON schema (`response_format: json_schema`)."""

    def chat(self, body: bytes, emit: Emit) -> None:
        """Run one OpenAI chat completion request (JSON), emitting the response or each
        stream chunk as OpenAI JSON, or `{"error": {...}}`; stops early when `emit` says so."""

    def embed(self, body: bytes, emit: Emit) -> None:
        """Run one OpenAI embeddings request (JSON) on a model loaded for embeddings,
        emitting the response (float vectors) or `{"error": {...}}`."""

    def close(self) -> None:
        """Free the model's memory."""


class Engine(Protocol):
    name: ClassVar[str]

    def load(self, spec: ModelSpec, info: GGUFInfo) -> EngineModel:
        """Load the model (blocking); raises EngineError with the reason."""


def error_payload(code: int, message: str, kind: str, param: str | None = None) -> bytes:
    """An engine's error as llama-server writes it: `{"error": {"code": status, ...}}`."""
    error: dict[str, Any] = {"code": code, "message": message, "type": kind}
    if param is not None:
        error["param"] = param
    return msgspec.json.encode({"error": error})
