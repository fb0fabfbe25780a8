"""What the status and admin surfaces ask of providers that run models themselves.

`llama_cpp` providers (a pool of in-process models) and providers with `launch:` (a
managed server) both answer these; `llmmux ps`, `GET /admin/models` and the load/unload
endpoints walk the router's providers for them.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LocalRuntime(Protocol):
    name: str

    def runtime_status(self) -> list[dict[str, Any]]:
        """One row per model: name, provider, kind, state, memory, in_flight, queued, times."""

    def serves(self, model: str) -> bool:
        """Whether `model` is one of this provider's local models."""

    async def load_model(self, model: str, keep_alive: float | None = None) -> None:
        """Load (or start) `model` now."""

    async def unload_model(self, model: str) -> bool:
        """Unload (or stop) `model` once idle; False if it was not loaded."""


IN_PROCESS_TYPES = ("llama_cpp", "mlx")


def single_process_reason(config: Any) -> str | None:
    """Why `config` must be served by one process, if it must: every worker would load its
    own copy of each in-process model and start its own managed servers on the same ports."""
    for name, provider in config.providers.items():
        if provider.type in IN_PROCESS_TYPES:
            return f"provider {name} runs models in-process"
        if "launch" in provider.extra:
            return f"provider {name} is a managed server"
    return None
