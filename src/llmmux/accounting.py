"""Wiring for one gateway process: the sinks that follow every request, virtual keys and admission.

The pipeline prices each routed call into one `RequestRecord` and publishes it; the sinks
(`llmmux.sinks`: ledger, metrics, request log, tracing, key spend, bodies) subscribe to the
router's events on their own. What is left here is building them, starting and stopping
them, reconfiguring them on reload, and the virtual keys: their lookup, CRUD and admission.

    accounting = Accounting.from_config(router)
    app = App(router, accounting=accounting)      # the app starts and stops it in its lifespan
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from . import audit, enduser, tags
from .alerts import BudgetAlerts
from .config.model import Config, LedgerConfig, LoggingConfig
from .enduser import end_user_id
from .errors import LLMMuxError, PermissionDenied
from .events import AllowList, CallContext, RequestRecord
from .key_service import KeyService
from .keys import KeyRing, VirtualKey, admit_together
from .ledger import LedgerWriter, Store, open_store
from .ledger.bodies import BodyLog
from .logs import RequestLog
from .masking import Masker, config_secrets
from .metrics import GatewayMetrics
from .pricing import Price
from .router import Router
from .routing.tokens import estimate_prompt_tokens, longest_input_tokens
from .shared.quota import Want
from .sinks import Batches, Sink, Wiring, factories
from .sinks.bodies import BodySink
from .sinks.ledger import LedgerSink
from .sinks.request_log import RequestLogSink
from .sinks.tracing import TracingSink
from .tags import request_tags, without_tags
from .types import ChatRequest, EmbeddingRequest

log = logging.getLogger("llmmux.accounting")
S = TypeVar("S", bound=Sink)

# A key the ring does not know may have been created a moment ago (by `llmmux keys create`
# or another worker), so a miss looks its hash up in the store. A flood of bad keys must not
# become a flood of queries: a missed hash is remembered for a while, and lookups are capped.


class Accounting:
    """Cost, ledger, virtual keys, metrics and request logs for one router (one process)."""

    def __init__(
        self,
        router: Router,
        *,
        store: Store | None = None,
        ledger: LedgerConfig | None = None,
        logging_config: LoggingConfig | None = None,
        metrics: GatewayMetrics | None = None,
        keys: KeyRing | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.router = router
        self.pricing = router.pricing  # the router's one catalog, which follows a config reload
        self.metrics = metrics or GatewayMetrics()
        self.metrics.model_labels.routable = lambda name: name in router.table.routes()  # read per call: reloads
        self.keys = keys or KeyRing()
        self.teams = KeyRing(kind="team")  # a team is admitted like a key: both must pass
        self.alerts = BudgetAlerts(lambda: router.config.alerts)
        self.keys.on_spend = self.teams.on_spend = self.alerts.spent
        self.masker = masker or router.masker  # one masker, refilled by the router on reload
        self.store = store
        settings = ledger or router.config.ledger
        router.key_name = self._key_name  # the response cache's allow_bypass may name keys
        self.key_service = KeyService(router, store, self.keys, self.teams, settings.refresh_interval_s)
        self.batches = Batches()
        self.wiring = Wiring(
            router,
            router.events,
            self.batches,
            self.masker,
            self.metrics,
            self.keys,
            self.teams,
            store,
            after_flush=self.key_service.refresh_if_due,
            db_turn=self.key_service.db_turn,  # writing rows and reloading spend take turns
        )
        self.sinks = [sink for build in factories() if (sink := build(self.wiring)) is not None]
        if logging_config is not None:
            for sink in self.sinks:
                if isinstance(sink, RequestLogSink):
                    sink.log.configure(logging_config)
        self._detach = [router.events.subscribe(self.batches.add), router.events.on_reload(self._reconfigure)]
        for sink in self.sinks:
            self._detach += sink.attach(self.wiring)
        router.events.admit = self.admit
        self.alerts.shared = router.shared

    @classmethod
    def from_config(cls, router: Router, *, metrics_folder: Path | None = None) -> Accounting:
        config: Config = router.config
        metrics = GatewayMetrics(metrics_folder, config.metrics.snapshot_interval_s)
        return cls(
            router, store=open_store(config), ledger=config.ledger, logging_config=config.logging, metrics=metrics
        )

    def detach(self) -> None:
        for remove in self._detach:
            remove()
        self._detach = []
        self.router.events.admit = None

    # -- the sinks --

    def _reconfigure(self, config: Config) -> None:
        for sink in self.sinks:
            try:
                sink.reconfigure(config)
            except Exception:
                log.exception("sink %s could not take the reloaded config", sink.name)

    def sink(self, kind: type[S]) -> S | None:
        """The running sink of this kind, if it was built (`accounting.sink(LedgerSink)`)."""
        return next((s for s in self.sinks if isinstance(s, kind)), None)

    @property
    def writer(self) -> LedgerWriter | None:
        ledger = self.sink(LedgerSink)
        return ledger.writer if ledger is not None else None

    @property
    def bodies(self) -> BodyLog | None:
        found = self.sink(BodySink)
        return found.bodies if found is not None else None

    @property
    def request_log(self) -> RequestLog:
        found = self.sink(RequestLogSink)
        assert found is not None
        return found.log

    @property
    def tracing(self) -> Any:
        found = self.sink(TracingSink)
        return found.spans if found is not None else None

    @tracing.setter
    def tracing(self, spans: Any) -> None:
        found = self.sink(TracingSink)
        if found is None:
            raise ValueError("tracing is off: set tracing.enabled in the config")
        found.spans = spans

    def drain(self) -> None:
        """Hand every finished request to the sinks now (they are otherwise handed on in batches)."""
        self.batches.drain()

    def _key_name(self, key_id: str) -> str | None:
        key = self.keys.get(key_id)
        return key.name if key is not None else None

    def admit(
        self, request: ChatRequest | EmbeddingRequest, context: CallContext
    ) -> AllowList | Awaitable[AllowList | None] | None:
        """Name the request's tags, end user and team, then check its key's and team's identity,
        budgets and limits now; return what the key and team allow, for the routed candidates.

        With a shared store the key's limits and spend are asked of it: an awaitable then."""
        key = self.keys.get(context.key_id) if context.key_id is not None else None
        team = self.teams.get(key.team_id) if key is not None and key.team_id is not None else None
        headers = context.headers or ()
        raw = request.raw
        defaults = [*(key.tags if key else ()), *(team.tags if team else ())]
        context.tags = request_tags(_header(headers, tags.HEADER), raw.get("metadata") if raw else None, defaults)
        if raw is not None and context.tags:
            request.raw, request.extra = without_tags(raw), without_tags(request.extra)
        hashed = self.router.config.privacy.hash_end_users
        context.end_user = end_user_id(_header(headers, enduser.HEADER), request.user, hashed=hashed)
        if context.key_id is None:
            return None

        def free() -> bool:  # asked only of a spent budget
            return self._only_free(request, context.tags)

        if team is not None:
            context.team_id = team.id
        if self.keys.shared is not None:
            ahead = functools.partial(self._ahead, request, context.tags)
            return self._admit_shared(context.key_id, team, context.end_user, free, ahead)
        admitted = self.keys.admit(context.key_id, context.end_user, free)
        if team is not None:
            self.teams.admit(team.id, context.end_user, free)
        return _allowed(admitted, team)

    async def _admit_shared(
        self,
        key_id: str,
        team: VirtualKey | None,
        end_user: str | None,
        free: Callable[[], bool],
        ahead: Callable[[], list[Want]],
    ) -> AllowList | None:
        # The key's, the team's and the likely provider's limits in one round trip at most.
        key = self.keys.admit_valid(key_id)
        owners = [(self.keys, key)] + ([(self.teams, self.teams.admit_valid(team.id))] if team is not None else [])
        await admit_together(owners, end_user, free, ahead)
        return _allowed(key, team)

    def _ahead(self, request: ChatRequest | EmbeddingRequest, tags: tuple[str, ...]) -> list[Want]:
        """The provider the request will likely reach first, whose limits its key's round trip may ask for too."""
        try:
            candidates = self.router.pipeline.planner.resolve(request, tags).candidates
        except LLMMuxError:
            return []
        if not candidates:
            return []
        # The estimate the attempt's tpm admission takes (the planner's), so the attempt finds it in the slice.
        tokens = estimate_prompt_tokens(request) if isinstance(request, ChatRequest) else longest_input_tokens(request)
        want = self.router.limiter.ahead(candidates[0].provider.name, tokens)
        return [want] if want is not None else []

    def _only_free(self, request: ChatRequest | EmbeddingRequest, tags: tuple[str, ...]) -> bool:
        """Whether every backend the request may reach is priced at zero (a local model, say)."""
        try:
            route = self.router.pipeline.planner.resolve(request, tags)
        except LLMMuxError:
            return False
        return all(_is_free(self.pricing.price(c.provider.name, c.model)) for c in route.candidates)

    def rejected(self, context: CallContext, error: LLMMuxError, public_model: str = "") -> None:
        """Record a request refused before routing (bad JSON, bad key, too large)."""
        record = RequestRecord(
            context, public_model, stream=False, status=error.status, error_kind=error.code or error.type
        )
        events = self.router.events
        events.start(record)
        record.latency_ms = (time.perf_counter() - context.started_perf) * 1000
        events.publish(record)

    # -- keys --

    # The key component's calls, where the server and the console find them.

    async def authenticate(self, secret: bytes) -> VirtualKey | None:
        return await self.key_service.authenticate(secret)

    async def refresh(self) -> None:
        await self.key_service.refresh()

    async def create_key(self, name: str, **limits: Any) -> tuple[VirtualKey, str]:
        return await self.key_service.create_key(name, **limits)

    async def update_key(self, id_or_name: str, changes: dict[str, Any]) -> VirtualKey:
        return await self.key_service.update_key(id_or_name, changes)

    async def team_changed(self, team_id: str) -> None:
        await self.key_service.team_changed(team_id)

    async def revoke_key(self, id_or_name: str) -> VirtualKey:
        return await self.key_service.revoke_key(id_or_name)

    async def audit_reload(self, why: str, before: Config) -> None:
        """One audit row per configuration reload: what it changed in providers and routes (names only)."""
        if self.store is None:
            return
        after = self.router.config
        await audit.record(
            self.store,
            f"config ({why})",
            "config.reload",
            after.source,
            {"providers": sorted(before.providers), "routes": sorted(before.routing.exact)},
            {"providers": sorted(after.providers), "routes": sorted(after.routing.exact)},
        )

    # -- lifecycle --

    async def start(self) -> None:
        if self.store is not None:
            await self.store.open()
            await self.refresh()
            await self.key_service.start()
            log.info("ledger at %s", self.store.location)
        for sink in self.sinks:
            await sink.start()
        await self.batches.start()
        self.pricing.warm()
        unpriced = self.pricing.unpriced()
        if unpriced:
            log.warning(
                "no price for %s: their requests are recorded at $0; set pricing: on the model (prices as of %s)",
                ", ".join(unpriced),
                self.pricing.as_of,
            )

    async def aclose(self) -> None:
        await self.key_service.aclose()
        await self.batches.aclose()  # the last records reach the sinks before they stop
        for sink in reversed(self.sinks):
            await sink.aclose()
        if self.store is not None:
            await self.store.close()


def _is_free(price: Price) -> bool:
    return not (price.input or price.output or price.cached_input or price.cache_write or price.reasoning)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """A client header (ASGI's lower-case names); a request carries a couple of dozen at most."""
    for found, value in headers:
        if found == name:
            return value
    return None


__all__ = ["Accounting", "config_secrets"]


class _KeyAndTeam:
    """A key that belongs to a team may use what both allow (the stricter wins)."""

    __slots__ = ("key", "team")

    def __init__(self, key: VirtualKey, team: VirtualKey) -> None:
        self.key, self.team = key, team

    def allows_any(self, names: Iterable[str]) -> bool:
        names = tuple(names)
        return self.key.allows_any(names) and self.team.allows_any(names)

    def refusal(self, model: str) -> LLMMuxError:
        if self.key.models:
            return self.key.refusal(model)
        team = self.team
        return PermissionDenied(
            f"The team '{team.name}' may not use model '{model}' (allowed: {', '.join(team.models)}).",
            param="model",
            code="model_not_allowed",
        )


def _allowed(key: VirtualKey, team: VirtualKey | None) -> AllowList | None:
    if team is not None and team.restricted:
        return _KeyAndTeam(key, team)
    return key if key.restricted else None
