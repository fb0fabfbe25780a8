"""A provider entry with `launch:`: the same provider, with its server run by llmmux.

It wraps the provider its `type` builds (usually `OpenAIProvider`): every request first
makes sure the server is up (starting it, and making room in its swap group, if needed)
and counts as in flight so idle stops and swaps never cut one off. See
`llmmux.config.launch` for the settings.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ..config.launch import LaunchSpec, fill
from ..config.model import ProviderConfig
from ..errors import ModelNotFound, UpstreamConnectError
from ..local.groups import SwapGroup
from ..local.supervisor import ManagedServer
from ..types import ChatChunk, ChatRequest, ChatResponse, ModelInfo
from .base import HealthResult, Provider, ProviderType


def create_managed(config: ProviderConfig, kind: ProviderType) -> ManagedProvider:
    """Build the provider of a `launch:` entry: port chosen, base URL filled in, server attached."""
    spec = config.launch
    assert spec is not None  # create_provider builds a managed provider only for a `launch:` entry
    port = spec.port or free_port()
    base_url = fill(config.base_url, port, spec.model) if config.base_url else f"http://127.0.0.1:{port}/v1"
    ready = fill(spec.ready, port, spec.model) if spec.ready else config.health_endpoint
    inner_config = dataclasses.replace(config, base_url=base_url, health_endpoint=ready)
    return ManagedProvider(inner_config, kind, kind.provider_class(inner_config, kind), spec, port)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ManagedProvider(Provider):
    """Starts its server on the first request and stops it after `idle_ttl`."""

    def __init__(
        self, config: ProviderConfig, kind: ProviderType, inner: Provider, spec: LaunchSpec, port: int
    ) -> None:
        super().__init__(config, kind)
        self.inner = inner
        self.wire = inner.wire
        self.server = ManagedServer(self.name, spec, port, self._ready)

    async def _ready(self) -> bool:
        """The ready check: `launch.ready` (or the type's health endpoint) answers 2xx."""
        return (await self.inner.health(timeout=2.0)).ok

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        async with self.server.use():
            try:
                return await self.inner.complete(request, model)
            except UpstreamConnectError:
                if not self.server.running:
                    raise
                return await self.inner.complete(request, model)  # a stale pooled connection: once more

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        async with self.server.use():
            chunks = self.inner.stream(request, model)
            try:
                first = await anext(chunks)
            except UpstreamConnectError:
                # llama-server closes the connection after a streamed reply although it
                # announced keep-alive; a request sent on it dies before reaching the
                # server (curl retries these too). The server is alive: try a fresh one.
                await _aclose(chunks)
                if not self.server.running:
                    raise
                chunks = self.inner.stream(request, model)
                first = await anext(chunks)
            try:
                yield first
                async for chunk in chunks:
                    yield chunk
            finally:
                await _aclose(chunks)

    async def list_models(self) -> list[ModelInfo]:
        """Live from the server while it runs; listing never starts it."""
        if self.server.state != "ready":
            return [ModelInfo(id=name, provider=self.name) for name in self.config.model_names()]
        async with self.server.use():
            return await self.inner.list_models()

    async def health(self, timeout: float = 5.0) -> HealthResult:
        if not self.server.running:
            return HealthResult(
                True, 0.0, None, f"server {self.server.state}; starts on the first request", self.health_url()
            )
        return await self.inner.health(timeout)

    def base_url(self) -> str:
        return self.inner.base_url()

    def bind(self, peers: Mapping[str, Provider]) -> None:
        group = self.server.spec.group
        if group is None:
            return
        for peer in peers.values():  # the first member to bind creates the group, the others join it
            if (
                isinstance(peer, ManagedProvider)
                and peer is not self
                and peer.server.spec.group == group
                and peer.server.group is not None
            ):
                peer.server.group.join(self.server)
                return
        SwapGroup(group, self.server.spec.group_max).join(self.server)

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "launch": self.server.status()}

    # -- LocalRuntime --

    def runtime_status(self) -> list[dict[str, Any]]:
        status = self.server.status()
        return [
            {
                "model": name,
                "provider": self.name,
                "kind": "managed server",
                "state": status["state"],
                "memory": None,
                "in_flight": status["in_flight"],
                "queued": 0,
                "keep_alive": status["idle_ttl"],
                "last_used": status["last_used"],
                "loaded_at": status["started_at"] if self.server.running else None,
                "expires_at": self._expires_at(),
                "pid": status["pid"],
                "port": status["port"],
                "crashes": status["crashes"],
                "log_file": status["log_file"],
                "group": status["group"],
            }
            for name in self.config.model_names() or [self.name]
        ]

    def _expires_at(self) -> float | None:
        ttl = self.server.spec.idle_ttl
        if self.server.state != "ready" or self.server.in_flight or ttl == float("inf"):
            return None
        return (self.server.last_used or time.time()) + ttl

    def serves(self, model: str) -> bool:
        return model in self.config.model_names() or model == self.name

    async def load_model(self, model: str, keep_alive: float | None = None) -> None:
        if not self.serves(model):
            raise ModelNotFound(model)
        async with self.server.use():
            pass

    async def unload_model(self, model: str) -> bool:
        if not self.serves(model):
            raise ModelNotFound(model)
        return await self.server.stop("unload requested")

    async def aclose(self) -> None:
        await self.server.aclose()
        await self.inner.aclose()


async def _aclose(chunks: AsyncIterator[ChatChunk]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
