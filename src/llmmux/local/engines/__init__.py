"""In-process engines: xllamacpp (preferred: prebuilt wheels, parallel slots),
llama-cpp-python (optional; one request at a time per model) and MLX (`type: mlx`;
never picked by "auto", which serves GGUF files with llama.cpp)."""

from __future__ import annotations

from .base import Engine, EngineError, EngineModel, EngineUnavailable, ModelSpec

PREFERENCE = ("xllamacpp", "llama_cpp_python")


def select_engine(name: str = "auto") -> Engine:
    """The engine called `name`, or for "auto" the first installed of PREFERENCE."""
    if name == "auto":
        reasons = []
        for candidate in PREFERENCE:
            try:
                return select_engine(candidate)
            except EngineUnavailable as exc:
                reasons.append(str(exc))
        raise EngineUnavailable("no in-process GGUF engine is installed: " + "; ".join(reasons))
    if name == "xllamacpp":
        from .xllamacpp import XLlamaCppEngine

        return XLlamaCppEngine()
    if name == "llama_cpp_python":
        from .llama_cpp_python import LlamaCppPythonEngine

        return LlamaCppPythonEngine()
    if name == "mlx":
        from .mlx import MLXEngine

        return MLXEngine()
    raise EngineUnavailable(f"unknown engine {name!r}; expected one of {', '.join((*PREFERENCE, 'mlx'))}")


__all__ = ["Engine", "EngineError", "EngineModel", "EngineUnavailable", "ModelSpec", "select_engine"]
