"""`Router`: the gateway in-process. The HTTP server is a thin layer over it."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .cache import ResponseCache, open_cache
from .config import Config, ProviderConfig
from .config.health_checks import HealthConfig
from .config.loader import provider_config
from .config.problems import Problems
from .events import CallContext, ClientApi, Events
from .health.monitor import HealthMonitor
from .health.probes import Prober
from .limits.limiter import Limiter
from .loading import Loaded, load
from .masking import Masker, config_secrets
from .pools import PoolCloser
from .pricing import Pricing
from .providers.base import HealthResult, Provider, ProviderType
from .providers.registry import create_provider, provider_types
from .routing import (
    ChatStream,
    Completion,
    Embeddings,
    Explanation,
    Pipeline,
    Route,
    RouteTable,
)
from .routing.direct import direct_call
from .shared import Shared
from .state import Clock, InMemoryState, State, monotonic
from .tasks import cancel_and_wait
from .types import ChatChunk, ChatRequest, EmbeddingRequest, ModelInfo, Usage
from .wire import openai as openai_wire

log = logging.getLogger("llmmux")

DRAIN_POLL_S = 0.1
P = TypeVar("P", bound=Provider)
T = TypeVar("T")


class Router:
    """Routes chat requests across every configured provider, with fallbacks and retries.

    Health, cooldowns, counters and limits live in `state` and survive `reload()`; so do
    the connection pools of providers whose settings did not change. Used as an async
    context manager, the router runs its providers' health checks in the background.

    >>> async with Router.from_config("./config") as router:            # doctest: +SKIP
    ...     done = await router.chat(model="chat-main", messages=[{"role": "user", "content": "hi"}])
    ...     done.response.choices[0].message.content, done.provider
    """

    def __init__(
        self,
        config: Config,
        *,
        types: Mapping[str, ProviderType] | None = None,
        state: State | None = None,
        clock: Clock = monotonic,
        masker: Masker | None = None,
        shared: Shared | None = None,
    ) -> None:
        """`config` as `llmmux.loading.load` returns it: parsed and checked, its routing settings
        (`config.routing.settings`) and provider options typed."""
        self._types = types or provider_types()
        # What leaves the gateway is scrubbed of this config's secrets; refilled on every reload.
        self.masker = masker if masker is not None else Masker()
        settings = config.routing.settings
        self.state: State = state if state is not None else InMemoryState()
        self.shared = shared  # limits, health and keys shared with the other workers and instances
        self.events = Events()
        self.pricing = Pricing(lambda: self.providers)  # a reload swaps the providers; prices follow
        self._pools = PoolCloser()  # closes the pools at the loop's end if nobody calls aclose()
        self.health = HealthMonitor(settings.health, self.state, clock, shared=shared)
        self.health.on_transition = self.events.health_changed
        self.limiter = Limiter(settings.limits, self.state, clock, shared=shared)
        self._sources: dict[str, ProviderConfig] = {}
        self._prober: Prober | None = None
        self._probe_now = False
        self._drains: set[asyncio.Task[None]] = set()
        self._retired: list[Provider] = []  # replaced outside an event loop: closed by aclose()
        self.cache: ResponseCache | None = None  # opened when a route first caches; kept across reloads
        self.key_name: Callable[[str], str | None] = lambda key_id: None  # virtual keys' names, set by accounting
        self._install(config, {})

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any]) -> Router:
        """Build from a config folder, an `llmmux.yaml`, or a dict in the single-file layout.

        The config is validated as `llmmux validate` would (ConfigError lists every error),
        except that it may have no providers yet: `add_provider` adds them.
        """
        loaded = load(source, require_providers=False).raise_for_errors()
        for problem in loaded.problems:
            log.warning("%s", problem)
        return cls(loaded.config)

    # -- building --

    def _install(self, config: Config, reuse: dict[str, Provider]) -> None:
        """Build providers, table and pipeline for `config`, then switch to them in one step."""
        settings = config.routing.settings
        skipped: dict[str, str] = {}
        sources: dict[str, ProviderConfig] = {}
        providers = self._build_providers(config, skipped, sources, reuse)
        for provider in providers.values():
            provider.bind(providers)  # managed servers in a swap group see their peers
        table = RouteTable(config, providers, skipped, self.pricing)
        for name in settings.routes:
            if not table.knows(name):
                log.warning("routing_strategy.routes.%s: no route has that name; its settings apply to nothing", name)
        for name, route in [("default", settings.default), *((n, settings.policy_for(n)) for n in settings.routes)]:
            embedding = route.cache.embedding if route.cache is not None else None
            if embedding is not None and not table.knows(embedding):
                log.warning(
                    "routing_strategy.routes.%s.cache.embedding: no model %r; its lookups will miss", name, embedding
                )
        self.health.configure(settings.health)
        self.limiter.configure(settings.limits)
        if settings.caches and self.cache is None:
            self.cache = open_cache(settings.cache, _folder(config), self._embed_prompt)
            self.cache.key_name = self._key_name
        cache = self.cache if settings.caches else None
        pipeline = Pipeline(
            table, self.events, health=self.health, limiter=self.limiter, cache=cache, pricing=self.pricing
        )
        self.masker.reset(config_secrets(config))  # a secret added by a reload is masked from now on
        # Requests already in flight keep the objects they started with.
        self.config, self.settings, self.skipped, self._sources = config, settings, skipped, sources
        self.providers, self.table, self.pipeline = providers, table, pipeline
        self._pools.providers = [*providers.values(), *self._retired]
        self.events.reloaded(config)  # the sinks take their new settings

    def _build_providers(
        self,
        config: Config,
        skipped: dict[str, str],
        sources: dict[str, ProviderConfig],
        reuse: dict[str, Provider],
    ) -> dict[str, Provider]:
        """Providers by name; `sources` gets the settings each was built from, to spot changes on reload."""
        providers: dict[str, Provider] = {}
        for name, pconfig in config.providers.items():
            if not pconfig.routable:
                skipped[name] = f"status is {pconfig.status!r}"
            elif pconfig.type not in self._types:
                skipped[name] = f"provider type {pconfig.type!r} is not supported"
                log.warning("skipping provider %s: type %r is not supported", name, pconfig.type)
            else:
                source = dataclasses.replace(pconfig)
                old = reuse.get(name)
                if old is not None and self._sources.get(name) == source:
                    providers[name], sources[name] = old, source  # unchanged: keep its connection pool
                    continue
                provider = self._create(pconfig, config.routing.settings.health)
                missing = provider.missing_credential()
                if missing is not None:
                    # A keyless cloud provider would only answer 401; routing past it is kinder.
                    skipped[name] = missing
                    log.warning("skipping provider %s: %s", name, missing)
                else:
                    providers[name], sources[name] = provider, source
        return providers

    def _create(self, pconfig: ProviderConfig, health: HealthConfig) -> Provider:
        endpoint = health.for_provider(pconfig.name).endpoint
        if endpoint:
            # `health_checks.<provider>.endpoint` overrides the provider's own health endpoint.
            pconfig = dataclasses.replace(pconfig, health_endpoint=endpoint)
        return create_provider(pconfig, self._types)

    # -- the registry at run time (the seeds' ProviderManager) --

    def add_provider(self, name: str, type: str, **settings: Any) -> Provider | None:
        """Add or replace a provider, e.g. `router.add_provider("ollama", "ollama", models=["llama3.1"])`.

        Returns the provider, or None when it is not routable (see `skipped`). Routes are rebuilt;
        requests already in flight finish on the routes they started with.
        """
        pconfig = provider_config(name, {"type": type, **settings})
        self._switch(self.config.with_providers({**self.config.providers, name: pconfig}))
        return self.providers.get(name)

    def remove_provider(self, name: str) -> None:
        providers = {n: p for n, p in self.config.providers.items() if n != name}
        self._switch(self.config.with_providers(providers))

    async def status(self, timeout: float = 5.0) -> dict[str, HealthResult]:
        """Probe every routable provider's health endpoint at once (see also `health_report`)."""
        names = list(self.providers)
        results = await asyncio.gather(*(self.providers[n].health(timeout) for n in names))
        return dict(zip(names, results, strict=True))

    async def list_models(self) -> dict[str, list[ModelInfo]]:
        """The models each provider reports itself (live), by provider; failures give an empty list."""
        names = list(self.providers)
        found = await asyncio.gather(*(self.providers[n].list_models() for n in names), return_exceptions=True)
        return {n: (f if isinstance(f, list) else []) for n, f in zip(names, found, strict=True)}

    async def call_provider(
        self,
        provider: P,
        call: Callable[[P], Awaitable[T]],
        *,
        model: str = "",
        context: CallContext | None = None,
        record: bool = False,
    ) -> T:
        """One call to `provider` that is not a routed request (Ollama's pull, delete, show, ps,
        version): its health admits it, its limits hold a slot, its outcome counts toward its
        health; with `record`, it is published as a finished request (ledger, metrics, logs)."""
        return await direct_call(
            self.health, self.limiter, self.events, provider, call, model=model, context=context, record=record
        )

    # -- requests --

    async def chat(
        self,
        request: ChatRequest | None = None,
        /,
        *,
        context: CallContext | None = None,
        settle_later: bool = False,
        **params: Any,
    ) -> Completion:
        """One non-streaming chat completion; takes a `ChatRequest` or OpenAI-style keyword arguments.

        `settle_later`: health, limits and the published record wait for `done.settle()`, which
        the caller must then call (a door does once the reply is written); `done.cost` is set then.
        """
        if not self._pools.armed():
            await self._pools.arm()
        done = await self.pipeline.chat(_request(request, params, stream=False), context, settle_later=settle_later)
        if done.pending is None:
            _priced(done)
        else:
            done.pending = functools.partial(_settled, done.pending, done)
        return done

    async def open_stream(
        self, request: ChatRequest | None = None, /, *, context: CallContext | None = None, **params: Any
    ) -> ChatStream:
        """Open a stream; returns once the first chunk has arrived, so its provider is known.

        Its `cost` is the request's once the last chunk has been read."""
        if not self._pools.armed():
            await self._pools.arm()
        opened = await self.pipeline.open_stream(_request(request, params, stream=True), context)
        opened.price = self.pricing.price(opened.provider, opened.model)
        return opened

    async def stream(self, request: ChatRequest | None = None, /, **params: Any) -> AsyncIterator[ChatChunk]:
        """`async for chunk in router.stream(model=..., messages=...)`."""
        opened = await self.open_stream(request, **params)
        try:
            async for chunk in opened:
                yield chunk
        finally:
            await opened.aclose()

    async def embed(
        self, request: EmbeddingRequest | None = None, /, *, context: CallContext | None = None, **params: Any
    ) -> Embeddings:
        """Embed texts: `await router.embed(model="nomic-embed-text", input=["a", "b"])`."""
        if request is None:
            request = openai_wire.decode_embedding_request(params)
        if not self._pools.armed():
            await self._pools.arm()
        done = await self.pipeline.embed(request, context)
        done.cost = done.record.cost_usd if done.record is not None else 0.0
        return done

    def _key_name(self, key_id: str) -> str | None:
        return self.key_name(key_id)  # late-bound: accounting sets key_name after the cache opens

    async def _embed_prompt(self, model: str, text: str) -> list[float]:
        """The semantic cache's embedder: any embedding route, recorded like any request."""
        request = EmbeddingRequest(model=model, inputs=[text])
        done = await self.pipeline.embed(request, CallContext(client_api=ClientApi.CACHE))
        return done.response.vectors[0]

    def cost(self, provider: str, model: str, usage: Usage | None) -> float:
        """USD for `usage` on `provider`'s `model` (a finished stream has it as `stream.cost`)."""
        return self.pricing.cost(provider, model, usage)

    def route(self, model: str) -> Route:
        return self.table.resolve(model)

    def explain(self, request: ChatRequest | None = None, /, **params: Any) -> Explanation:
        """Where a request would go, each routing step and the final order, without sending it."""
        plan = self.pipeline.plan(_request(request, params, stream=bool(params.get("stream"))), explain=True)
        assert plan.explanation is not None
        return plan.explanation

    def models(self) -> list[str]:
        return self.table.public_names()

    def health_report(self) -> list[dict[str, Any]]:
        """Each provider's health (what `GET /health/providers` returns)."""
        report = self.health.snapshot(self.providers)
        for row in report:
            row["in_flight"] = self.limiter.in_flight(row["name"])
            limits = self.limiter.limits(row["name"])
            row["limits"] = None if limits is None else dataclasses.asdict(limits)
        return report

    # -- lifecycle --

    async def start(self, *, probe_now: bool = False) -> None:
        """Start the providers' background work and the health checks.

        The server checks every provider at once when it starts (`probe_now`); a library
        user's first checks come one interval later, so a short script sends no probes.
        `check_health()` probes on demand.
        """
        if self._prober is None:
            if self.shared is not None:
                await self.shared.start()
            for provider in self.providers.values():
                await provider.start()  # e.g. preloading local models
            self._probe_now = probe_now
            self._prober = Prober(self.health, self.providers)
            self._prober.start(now=probe_now)

    async def check_health(self) -> None:
        """Probe every provider once, now."""
        await Prober(self.health, self.providers).check_all()

    def reload(self, config: Config) -> None:
        """Switch to `config` (as `llmmux.loading.load` returns it: `reload_from_source` loads,
        checks and refuses a config with errors); in-flight requests finish on the routes they
        started with."""
        self._switch(config)

    def _switch(self, config: Config) -> None:
        """Install `config`; retire the providers it no longer uses once they are idle."""
        old_pipeline, old_providers = self.pipeline, self.providers
        # A provider removed at run time leaves routing sections naming it: the table skips those.
        self._install(config, old_providers)
        retired = [p for name, p in old_providers.items() if self.providers.get(name) is not p]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._retired += retired  # no loop to drain on: closed by aclose()
            return
        if retired:
            self._background(loop, self._drain(old_pipeline, retired))
        if self._prober is not None:
            for name, provider in self.providers.items():
                if old_providers.get(name) is not provider:
                    self._background(loop, provider.start())
            prober, self._prober = self._prober, Prober(self.health, self.providers)
            self._prober.start(now=self._probe_now)
            self._background(loop, prober.stop())

    def _background(self, loop: asyncio.AbstractEventLoop, work: Any) -> None:
        task = loop.create_task(work)
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    def check_source(self) -> tuple[Config, Problems]:
        """Read and validate the config files this router came from, as a reload would (nothing changes)."""
        loaded = self._load_source()
        return loaded.config, loaded.problems

    def _load_source(self) -> Loaded:
        return load(self.config.source, types=self._types)

    async def reload_from_source(self) -> bool:
        """Re-read the config from where it came from; a bad one is logged and the old one kept."""
        source = self.config.source
        if source == "<dict>":
            log.warning("reload requested, but this config was given as a dict: nothing to re-read")
            return False
        loaded = self._load_source()
        if loaded.problems.errors:
            for problem in loaded.problems.errors:
                log.error("config reload rejected: %s", problem)
            log.error("keeping the previous configuration (%d error(s) in %s)", len(loaded.problems.errors), source)
            return False
        self.reload(loaded.config)
        log.info(
            "configuration reloaded from %s: %d providers, %d routes",
            source,
            len(self.providers),
            len(self.table.routes()),
        )
        return True

    async def _drain(self, pipeline: Pipeline, providers: list[Provider]) -> None:
        """Close retired providers once the requests that were using them have finished."""
        try:
            while pipeline.active > 0:  # noqa: ASYNC110  (a counter, not an event: polled only during a reload)
                await asyncio.sleep(DRAIN_POLL_S)
        finally:
            for provider in providers:
                await provider.aclose()

    def stop_generating(self) -> None:
        """The server is stopping: every in-process generation ends now, with an error."""
        for provider in [*self.providers.values(), *self._retired]:  # retired: replaced by a reload, maybe still busy
            provider.stop_generating()

    async def aclose(self) -> None:
        self._pools.disarm()
        if self._prober is not None:
            await self._prober.stop()
            self._prober = None
        drains = list(self._drains)
        await cancel_and_wait(*drains)
        for provider in [*self.providers.values(), *self._retired]:
            await provider.aclose()
        self._retired.clear()
        if self.shared is not None:
            await self.shared.aclose()
        if self.cache is not None:
            await self.cache.aclose()
            self.cache = None

    async def __aenter__(self) -> Router:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _folder(config: Config) -> Path:
    """Where relative paths in `config` point: beside its file, or the working folder for a dict."""
    if config.source == "<dict>":
        return Path.cwd()
    source = Path(config.source)
    return source if source.is_dir() else source.parent


def _request(request: ChatRequest | None, params: dict[str, Any], *, stream: bool) -> ChatRequest:
    if request is not None:
        return request
    params["stream"] = stream
    return openai_wire.decode_chat_request(params)


def _priced(done: Completion) -> None:
    if done.record is not None and done.record.cache_source is None:  # a cache hit costs nothing
        done.cost = done.record.cost_usd  # priced once, as the ledger and metrics see it


def _settled(accounting: Callable[[], None], done: Completion) -> None:
    accounting()
    _priced(done)
