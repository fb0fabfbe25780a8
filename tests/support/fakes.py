"""In-process fakes for routing tests: providers that need no network, and scripted signals.

`FakeProvider` answers from a script of `Act`s (delays, errors, chunked streams, stalls);
it is registered as provider type `fake`, so a whole `Router` can be built around it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from llmmux.config.model import ProviderConfig
from llmmux.errors import UpstreamError
from llmmux.providers.base import HealthResult, Provider, ProviderType
from llmmux.providers.registry import PROVIDER_TYPES
from llmmux.router import Router
from llmmux.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    Message,
    ModelInfo,
    Usage,
)

_ids = itertools.count()


@dataclass(frozen=True)
class Act:
    """One scripted answer: wait `delay`, then fail with `error` or answer `content`.

    Streams send `chunks` pieces; `stall_after`/`stall` pause before chunk N; `fail_after`
    raises `error` before chunk N (after N chunks went out).
    """

    content: str = "ok"
    delay: float = 0.0
    error: UpstreamError | None = None
    chunks: int = 3
    stall_after: int | None = None
    stall: float = 0.0
    fail_after: int | None = None
    usage: int = 10


class FakeProvider(Provider):
    wire = "fake"

    def __init__(self, config: ProviderConfig, kind: ProviderType) -> None:
        super().__init__(config, kind)
        self.queue: deque[Act] = deque()
        self.default = Act(content=f"from {config.name}")
        self.calls = 0
        self.streams = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.health_ok = True
        self.closed = False

    def script(self, *acts: Act) -> None:
        self.queue.extend(acts)

    def _next(self) -> Act:
        self.calls += 1
        return self.queue.popleft() if self.queue else self.default

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        act = self._next()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(act.delay)
            if act.error is not None:
                raise act.error
            return response(act.content, model, act.usage)
        finally:
            self.in_flight -= 1

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        act = self._next()
        self.streams += 1
        await asyncio.sleep(act.delay)
        if act.error is not None and act.fail_after is None:
            raise act.error
        for i in range(act.chunks):
            if act.stall_after == i:
                await asyncio.sleep(act.stall)
            if act.fail_after == i and act.error is not None:
                raise act.error
            yield chunk(f"{act.content}[{i}]", model)
        yield ChatChunk(id="c", model=model, created=0, choices=[], usage=Usage(total_tokens=act.usage))

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo(id=m, provider=self.name) for m in self.config.model_names()]

    async def aclose(self) -> None:
        self.closed = True

    async def health(self, timeout: float = 5.0) -> HealthResult:
        return HealthResult(self.health_ok, 1.0, 200 if self.health_ok else 503)


FAKE = ProviderType("fake", FakeProvider, "http://127.0.0.1:9/v1")
TYPES = {**PROVIDER_TYPES, "fake": FAKE}


def response(content: str, model: str, tokens: int = 10) -> ChatResponse:
    return ChatResponse(
        id=f"r{next(_ids)}",
        model=model,
        created=int(time.time()),
        choices=[Choice(message=Message(role="assistant", content=content), finish_reason="stop")],
        usage=Usage(prompt_tokens=1, completion_tokens=tokens - 1, total_tokens=tokens),
    )


def chunk(text: str, model: str) -> ChatChunk:
    return ChatChunk(id="c", model=model, created=0, choices=[ChunkChoice(delta=Delta(content=text))])


def fake_router(config: dict[str, Any], **kwargs: Any) -> Router:
    """A Router over `fake` providers (any provider without a type becomes one)."""
    from llmmux.config.loader import config_from_dict

    config = dict(config)
    config["providers"] = {name: {"type": "fake", **p} for name, p in config["providers"].items()}
    config.setdefault("health_checks", {"enabled": False})
    parsed, problems = config_from_dict(config)
    assert not problems.errors, problems.errors
    return Router(parsed, types=TYPES, **kwargs)


def fake(router: Router, name: str) -> FakeProvider:
    provider = router.providers[name]
    assert isinstance(provider, FakeProvider)
    return provider


def openai_provider(name: str, url: str = "http://127.0.0.1:9/v1") -> Provider:
    """A real provider object for strategy tests (it connects lazily, so nothing is opened)."""
    from llmmux.providers.registry import create_provider

    return create_provider(ProviderConfig(name=name, type="openai_compatible", base_url=url))
