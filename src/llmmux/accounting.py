"""Everything that follows a request: its cost, its ledger row, its key's spend, metrics, a log line.

One subscriber to the router's events does all of it, in a fixed order, with no I/O:
estimate usage if the backend sent none, price it, count it, charge the key, queue the
row, queue the log line. The database work happens in the ledger writer's task.

    accounting = Accounting.from_config(router)
    app = App(router, accounting=accounting)      # the app starts and stops it in its lifespan
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from . import audit, enduser, tags
from .alerts import BudgetAlerts
from .cache import MemoryStore
from .config.model import Config, LedgerConfig, LoggingConfig
from .enduser import end_user_id
from .errors import LLMMuxError, PermissionDenied
from .estimate import estimate_usage
from .events import AllowList, CallContext, RequestRecord
from .keys import KEYS_CHANNEL, KeyRing, VirtualKey, budget_starts, end_user_budget_starts, hash_secret
from .ledger import LedgerWriter, Row, Store, keyops, open_store, teamops
from .ledger.bodies import BodyLog
from .ledger.changes import POLL_S, ChangeFeed
from .ledger.rows import attempt_counts, to_row
from .ledger.schema import REQUEST_COLUMNS
from .logs import RequestLog
from .masking import Masker, config_secrets
from .metrics import GatewayMetrics
from .pricing import Price
from .router import Router
from .tags import request_tags, without_tags
from .teams import TEAM_CHANGED
from .types import ChatRequest, EmbeddingRequest

log = logging.getLogger("llmmux.accounting")

# A key the ring does not know may have been created a moment ago (by `llmmux keys create`
# or another worker), so a miss looks its hash up in the store. A flood of bad keys must not
# become a flood of queries: a missed hash is remembered for a while, and lookups are capped.
BATCH_INTERVAL_S = 0.1
MISS_MEMORY_S = 10.0
MISS_MEMORY_MAX = 10_000
LOOKUPS_PER_S = 20
_KEY_ID = REQUEST_COLUMNS.index("key_id")
_COST = REQUEST_COLUMNS.index("cost_usd")
_ATTEMPT_LOG = REQUEST_COLUMNS.index("attempt_log")
_END_USER = REQUEST_COLUMNS.index("end_user")
_TEAM_ID = REQUEST_COLUMNS.index("team_id")


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
        self.count = router.config.metrics.enabled  # metrics: enabled: false stops counting and /metrics
        self.keys = keys or KeyRing()
        self.teams = KeyRing(kind="team")  # a team is admitted like a key: both must pass
        self.alerts = BudgetAlerts(lambda: router.config.alerts)
        self.keys.on_spend = self.teams.on_spend = self.alerts.spent
        self.masker = masker or router.masker  # one masker, refilled by the router on reload
        self.request_log = RequestLog(logging_config or router.config.logging, self.masker)
        self.store = store
        settings = ledger or router.config.ledger
        self.refresh_interval_s = settings.refresh_interval_s
        # Writing rows and reloading spend take turns, so a reload never misses a batch being settled.
        self._db_turn = asyncio.Lock()
        self.writer = (
            LedgerWriter(
                store,
                flush_interval_s=settings.flush_interval_s,
                batch_size=settings.batch_size,
                max_pending=settings.max_pending,
                on_written=self._settle,
                on_dropped=self._dropped,
                after_flush=self._refresh_if_due,
                lock=self._db_turn,
            )
            if store is not None
            else None
        )
        # Prompts and replies of the models `logging.bodies` names, for the console.
        body_settings = (logging_config or router.config.logging).body_store
        self.bodies = (
            BodyLog(store, body_settings, self.masker)
            if store is not None and body_settings.enabled and self.request_log.logs_bodies
            else None
        )
        self._last_refresh = 0.0
        self._refreshing: asyncio.Future[None] | None = None
        self._misses: dict[str, float] = {}
        self._finished: list[RequestRecord] = []
        self.tracing = _tracing(router) if router.config.tracing.enabled else None
        self._batcher: asyncio.Task[None] | None = None
        self._follower: asyncio.Task[None] | None = None
        self.metrics.before_read = self.drain
        self.metrics.cache_size = self._cache_size
        router.key_name = self._key_name  # the response cache's allow_bypass may name keys
        self._lookup_second, self._lookups = 0, 0
        self._detach = [router.events.subscribe(self.on_start, start=True), router.events.subscribe(self.on_finish)]
        router.events.admit = self.admit
        self.keys.shared = self.teams.shared = router.shared
        self.alerts.shared = router.shared
        self._key_loads: set[asyncio.Task[None]] = set()
        if router.shared is not None:
            router.shared.listen(KEYS_CHANNEL, self._key_changed)

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

    # -- the hot path --

    def on_start(self, record: RequestRecord) -> None:
        if self.count:
            self.metrics.started(record)
        if self.request_log.wants_body(record.public_model):
            record.output = []

    def on_finish(self, record: RequestRecord) -> None:
        if record.cache_source is not None:
            # A cache hit: no model ran, so no tokens and no cost; what the answer cost is saved.
            record.saved_usd = self.pricing.cost(record.provider, record.model, record.cache_usage)
        elif record.provider is not None and record.request is not None and _no_usage(record):
            # The backend answered but reported no usage (or the client left mid-stream).
            record.usage = estimate_usage(record.request, record.response, record.output_chars)
        usage = record.usage
        cost = record.cost_usd = self.pricing.cost(record.provider, record.model, usage)
        key_id = record.context.key_id
        if key_id is not None:  # at once: the key's next request must see this spend
            tokens = usage.total_tokens if usage is not None else 0
            self.keys.record(key_id, cost, tokens, record.context.end_user)
            if record.context.team_id is not None:
                self.teams.record(record.context.team_id, cost, tokens, record.context.end_user)
        if self.count:
            self.metrics.finished()
        self._finished.append(record)
        if self._batcher is None:
            self.drain()

    def drain(self) -> None:
        """Count, queue and log the finished requests waiting for it.

        Done in batches rather than per request: the same work in a tight loop every
        BATCH_INTERVAL_S runs with its code and data in cache, and measurably costs less
        than when interleaved with request handling.
        """
        batch, self._finished = self._finished, []
        shared = self.router.shared
        if shared is not None and self.count:
            self.metrics.shared_up.set((shared.kind,), 1.0 if shared.up else 0.0)
            self.metrics.shared_outages.values[(shared.kind,)] = float(shared.outages)
        observe = self.metrics.observe if self.count else None
        writer, log_request = self.writer, self.request_log.log
        trace = self.tracing.record if self.tracing is not None else None
        bodies, wants_body = self.bodies, self.request_log.wants_body
        for record in batch:
            counts = attempt_counts(record)
            if observe is not None:
                observe(record, record.cost_usd)
            if writer is not None:
                writer.add(self._row(record, counts))
            log_request(record, counts)
            if trace is not None:
                trace(record)
            if bodies is not None and wants_body(record.public_model):
                bodies.add(record)

    async def _batches(self) -> None:
        while True:
            await asyncio.sleep(BATCH_INTERVAL_S)
            if self._finished:
                self.drain()

    def _row(self, record: RequestRecord, counts: tuple[int, int, int] | None = None) -> Row:
        row = to_row(record, counts)
        log = row[_ATTEMPT_LOG]
        if log is not None:  # failed attempts carry upstream messages: mask anything secret-shaped
            row = (*row[:_ATTEMPT_LOG], self.masker.scrub(log), *row[_ATTEMPT_LOG + 1 :])
        return row

    def _key_name(self, key_id: str) -> str | None:
        key = self.keys.get(key_id)
        return key.name if key is not None else None

    def _cache_size(self) -> tuple[int, int]:
        store = self.router.cache.store if self.router.cache is not None else None
        return store.size() if isinstance(store, MemoryStore) else (0, 0)

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
            return self._admit_shared(context.key_id, team, context.end_user, free)
        admitted = self.keys.admit(context.key_id, context.end_user, free)
        if team is not None:
            self.teams.admit(team.id, context.end_user, free)
        return _allowed(admitted, team)

    async def _admit_shared(
        self, key_id: str, team: VirtualKey | None, end_user: str | None, free: Callable[[], bool]
    ) -> AllowList | None:
        if team is None:
            return _allowed(await self.keys.admit_shared(key_id, end_user, free), None)
        # The key's and the team's round trips at once: a key in a team waits for one, not two.
        key, team_answer = await asyncio.gather(
            self.keys.admit_shared(key_id, end_user, free),
            self.teams.admit_shared(team.id, end_user, free),
            return_exceptions=True,
        )
        for answer in (key, team_answer):  # the key's own refusal first, then the team's
            if isinstance(answer, BaseException):
                raise answer
        assert isinstance(key, VirtualKey)
        return _allowed(key, team)

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

    async def authenticate(self, secret: bytes) -> VirtualKey | None:
        """The key with this secret, or None. Known keys cost a hash and a dict lookup."""
        digest = hash_secret(secret)
        key = self.keys.find_hash(digest)
        if key is not None or self.store is None:
            return key
        return await self._look_up(digest)

    async def _look_up(self, digest: str) -> VirtualKey | None:
        assert self.store is not None
        now = time.monotonic()
        missed = self._misses.get(digest)
        if missed is not None and now - missed < MISS_MEMORY_S:
            return None
        second = int(now)
        if second != self._lookup_second:
            self._lookup_second, self._lookups = second, 0
        if self._lookups >= LOOKUPS_PER_S:
            return None
        self._lookups += 1
        key = await self.store.key_by_hash(digest)
        if key is None:
            if len(self._misses) >= MISS_MEMORY_MAX:
                self._misses.clear()
            self._misses[digest] = now
            return None
        spend = await self.store.key_spend(budget_starts([key], time.time()))
        self.keys.put(key, spend.get(key.id, 0.0))
        if key.team_id is not None and self.teams.get(key.team_id) is None:
            await self.refresh()  # a team made since the last refresh: its limits hold from the first request
        return key

    async def refresh(self) -> None:
        """Reload keys and their spend from the store (single-flight: concurrent callers share one)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._load_keys())
        await asyncio.shield(self._refreshing)

    async def _load_keys(self) -> None:
        assert self.store is not None
        async with self._db_turn:
            self._last_refresh = time.monotonic()
            keys = await self.store.list_keys()
            now = time.time()
            spend = await self.store.key_spend(budget_starts(keys, now))
            user_spend = await self.store.end_user_spend(end_user_budget_starts(keys, now))
            self.keys.load(keys, spend, user_spend)
            teams = await teamops.list_teams(self.store)
            spend = await self.store.key_spend(budget_starts(teams, now), "team_id")
            user_spend = await self.store.end_user_spend(end_user_budget_starts(teams, now), "team_id")
            self.teams.load(teams, spend, user_spend)

    async def _refresh_if_due(self) -> None:
        if time.monotonic() - self._last_refresh >= self.refresh_interval_s:
            await self.refresh()

    def _settle(self, rows: list[Row]) -> None:
        self.keys.settled(*_costs(rows, _KEY_ID))
        self.teams.settled(*_costs(rows, _TEAM_ID))

    def _dropped(self, count: int) -> None:
        self.metrics.ledger_dropped.inc((), count)

    async def create_key(self, name: str, **limits: Any) -> tuple[VirtualKey, str]:
        key, secret = await keyops.create_key(self._require_store(), name, **limits)
        self._changed(key)
        await self._know_team(key)
        return key, secret

    async def update_key(self, id_or_name: str, changes: dict[str, Any]) -> VirtualKey:
        key = await keyops.update_key(self._require_store(), id_or_name, changes)
        self._changed(key)
        await self._know_team(key)
        return key

    async def _know_team(self, key: VirtualKey) -> None:
        """A key in a team this process has not loaded yet (made elsewhere): load it before the key's first request."""
        if key.team_id is not None and self.teams.get(key.team_id) is None and self.store is not None:
            await self.refresh()

    async def team_changed(self, team_id: str) -> None:
        """Take a team's change here at once, and tell the other workers and instances to reload their teams."""
        await self.refresh()
        if self.router.shared is not None:
            self.router.shared.publish(KEYS_CHANNEL, TEAM_CHANGED + team_id.encode())

    async def revoke_key(self, id_or_name: str) -> VirtualKey:
        key = await keyops.revoke_key(self._require_store(), id_or_name)
        self._changed(key)
        return key

    def _changed(self, key: VirtualKey) -> None:
        """Take a changed key at once, and tell the other workers and instances to reload it."""
        self.keys.put(key)
        if self.router.shared is not None:
            self.router.shared.publish(KEYS_CHANNEL, key.id.encode())

    def _key_changed(self, sender: str, payload: bytes) -> None:
        if self.store is None or self.router.shared is None or sender == self.router.shared.instance:
            return
        changed = self._reload_all() if payload.startswith(TEAM_CHANGED) else self._reload_key(payload.decode())
        task = asyncio.ensure_future(changed)
        self._key_loads.add(task)
        task.add_done_callback(self._key_loads.discard)

    async def _reload_all(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("could not reload keys and teams after a team changed on another instance")

    async def _reload_key(self, key_id: str) -> None:
        assert self.store is not None
        try:
            key = await self.store.get_key(key_id)
        except Exception:
            log.exception("could not reload key %s after a change on another instance", key_id)
            return
        if key is not None:
            self.keys.put(key)
            await self._know_team(key)

    async def _follow_changes(self, feed: ChangeFeed) -> None:
        """Take key and team changes made elsewhere (`llmmux keys revoke`, another instance) within POLL_S."""
        failing = False
        while True:
            await asyncio.sleep(POLL_S)
            try:
                changes = await feed.poll()
            except Exception as exc:
                if not failing:
                    log.warning("could not read key changes from the ledger (%s); retrying", type(exc).__name__)
                failing = True
                continue
            failing = False
            if any(c.action.startswith("team.") or c.target is None for c in changes):
                await self.refresh()  # a team's change reaches its keys: reload them all
                continue
            for change in changes:
                assert change.target is not None
                await self._reload_key(change.target)

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

    def _require_store(self) -> Store:
        if self.store is None:
            raise LookupError("virtual keys need a ledger: set ledger.path or database_url")
        return self.store

    # -- lifecycle --

    async def start(self) -> None:
        if self.store is not None:
            await self.store.open()
            await self.refresh()
            assert self.writer is not None
            await self.writer.start()
            if self.bodies is not None:
                await self.bodies.start()
            feed = ChangeFeed(self.store)
            await feed.start()
            self._follower = asyncio.create_task(self._follow_changes(feed), name="llmmux-key-changes")
            log.info("ledger at %s", self.store.location)
        await self.metrics.start()
        await self.request_log.start()
        self._batcher = asyncio.create_task(self._batches(), name="llmmux-accounting")
        self.pricing.warm()
        unpriced = self.pricing.unpriced()
        if unpriced:
            log.warning(
                "no price for %s: their requests are recorded at $0; set pricing: on the model (prices as of %s)",
                ", ".join(unpriced),
                self.pricing.as_of,
            )

    async def aclose(self) -> None:
        for task in (self._batcher, self._follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._batcher = self._follower = None
        self.drain()
        if self.writer is not None:
            await self.writer.aclose()
        if self.bodies is not None:
            await self.bodies.aclose()
        await self.metrics.aclose()
        await self.request_log.aclose()
        if self.store is not None:
            await self.store.close()


def _tracing(router: Router) -> Any:
    try:
        from .tracing import Tracing

        return Tracing(lambda: router.providers)
    except ImportError:
        log.warning("tracing is enabled but OpenTelemetry is not installed: pip install 'llmmux[otel]'")
        return None


def _costs(rows: list[Row], owner: int) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
    """USD per owner (key or team) and per (owner, end user) in written rows."""
    costs: dict[str, float] = defaultdict(float)
    user_costs: dict[tuple[str, str], float] = defaultdict(float)
    for row in rows:
        if row[owner] is not None and row[_COST]:
            costs[row[owner]] += row[_COST]
            if row[_END_USER] is not None:
                user_costs[(row[owner], row[_END_USER])] += row[_COST]
    return costs, user_costs


def _is_free(price: Price) -> bool:
    return not (price.input or price.output or price.cached_input or price.cache_write or price.reasoning)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """A client header (ASGI's lower-case names); a request carries a couple of dozen at most."""
    for found, value in headers:
        if found == name:
            return value
    return None


def _no_usage(record: RequestRecord) -> bool:
    usage = record.usage
    # Some servers send a usage object of zeros: with a reply in hand that means "not counted".
    return usage is None or (usage.prompt_tokens == 0 and usage.completion_tokens == 0)


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
