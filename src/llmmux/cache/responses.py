"""`ResponseCache`: looks up and fills cached answers for the request pipeline.

    lookup   the request's route caches, the client did not opt out: the entry, or None
    fill     a clean answer of a cacheable route: stored in the background

The pipeline calls it after the request was admitted (key, permissions, rate limit: a hit
counts as a request against the key's rpm, but spends no tokens or money) and before any
routing work, so a hit costs a digest and a store read. Stores fail soft: a broken store
is a miss.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.cache_settings import CacheConfig, CachePolicy
from ..errors import InvalidRequest
from ..events import RequestRecord
from ..types import ChatChunk, ChatRequest, ChatResponse
from . import entry as entries
from .entry import CacheEntry
from .key import exact_key, guard_key, namespace, prompt_text
from .store import CacheStore, StoreStats

if TYPE_CHECKING:
    from .vectors import VectorIndex

log = logging.getLogger("llmmux.cache")

Embed = Callable[[str, str], Awaitable[list[float]]]  # (embedding model, text) -> vector

# Request directives, from `Cache-Control` and `x-llmmux-cache` (server.http reads them).
SKIP, REFRESH, NO_STORE, INVALID = "skip", "refresh", "no-store", "invalid"
SEMANTIC_SYNC_S = 2.0
WARN_EVERY_S = 30.0  # how often a semantic lookup picks up entries other instances wrote


@dataclass(frozen=True, slots=True)
class Hit:
    entry: CacheEntry
    label: str  # the response header: "hit" or "semantic-hit; score=0.97"
    score: float | None = None


@dataclass(slots=True)
class Lookup:
    """One request's trip through the cache: its key, and the hit or what a fill needs."""

    policy: CachePolicy
    key: str
    write: bool
    hit: Hit | None = None
    vector: list[float] | None = None  # semantic: the prompt's embedding, stored with the answer
    guard: str | None = None


@dataclass(slots=True)
class Counts:
    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    stored: int = 0
    store_errors: int = 0


class ResponseCache:
    """Exact and semantic lookups over one store, shared by every pipeline a reload builds."""

    def __init__(self, config: CacheConfig, store: CacheStore, embed: Embed | None = None) -> None:
        self.config = config
        self.store = store
        self.embed = embed
        self.counts = Counts()
        self._index: VectorIndex | None = None
        self._synced = 0.0
        self._sync_lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._warned = -WARN_EVERY_S
        self.key_name: Callable[[str], str | None] = lambda key_id: None  # the router's, for allow_bypass by name

    @property
    def index(self) -> VectorIndex:
        """The semantic index, made on first use: numpy is needed only by a semantic cache."""
        if self._index is None:
            from .vectors import VectorIndex

            self._index = VectorIndex()
        return self._index

    # -- lookup --

    def allows(self, record: RequestRecord) -> tuple[bool, bool]:
        """(read, write) for this request: the client's directive, where its key may give one."""
        context = record.context
        directive = context.cache_directive
        if directive is None:
            return True, True
        if directive == INVALID:
            raise InvalidRequest("The x-llmmux-cache header must be 'skip' or 'refresh'.", param="x-llmmux-cache")
        key_id = context.key_id
        if not self.config.may_bypass(key_id, self.key_name(key_id) if key_id is not None else None):
            return True, True
        return directive not in (SKIP, REFRESH), directive not in (SKIP, NO_STORE)

    async def lookup(self, request: ChatRequest, policy: CachePolicy, record: RequestRecord) -> Lookup:
        read, write = self.allows(record)
        # A miss that will not be stored (no-store) is still a miss; not looking is a refresh or a bypass.
        record.cache = "miss" if read else "refresh" if write else "bypass"
        found = Lookup(policy, "", write)
        if read:
            try:
                found.hit = await (
                    self._semantic(request, found, record) if policy.semantic else self._exact(request, found, record)
                )
            except InvalidRequest:
                raise
            except Exception as exc:  # a store or embedding failure costs a miss, never the request
                self._failed("lookup failed; answering from upstream", exc)
        else:
            found.key = _key(request, policy, record)
        hit = found.hit
        if hit is None:
            self.counts.misses += read
            return found
        if hit.score is None:
            self.counts.hits += 1
        else:
            self.counts.semantic_hits += 1
        record.cache, record.cache_score = ("hit" if hit.score is None else "semantic-hit"), hit.score
        record.cache_source, record.cache_usage = hit.entry.request_id, hit.entry.usage
        record.provider, record.model = hit.entry.provider, hit.entry.model
        return found

    async def _exact(self, request: ChatRequest, found: Lookup, record: RequestRecord) -> Hit | None:
        found.key = _key(request, found.policy, record)
        data = await self.store.get(found.key)
        entry = entries.decode(data) if data is not None else None
        if entry is None or entry.expires <= time.time():
            return None
        return Hit(entry, "hit")

    async def _semantic(self, request: ChatRequest, found: Lookup, record: RequestRecord) -> Hit | None:
        policy = found.policy
        assert policy.embedding is not None
        if self.embed is None:
            raise RuntimeError("semantic cache without an embedder")
        exact = await self._exact(request, found, record)  # the same prompt again needs no embedding
        if exact is not None:
            return exact
        found.guard = guard = guard_key(request, policy, record.context.key_id)
        found.vector = vector = await self.embed(policy.embedding, prompt_text(request))
        await self._sync()
        for key, score in self.index.nearest(vector, guard, policy.threshold):
            data = await self.store.get(key)
            entry = entries.decode(data) if data is not None else None
            if entry is None or entry.expires <= time.time() or entry.guard != guard:
                self.index.remove(key)
                continue
            return Hit(entry, f"semantic-hit; score={score:.2f}", round(score, 4))
        return None

    async def _sync(self) -> None:
        """Index semantic entries any instance wrote since the last look (at most every SEMANTIC_SYNC_S)."""
        now = time.time()
        if now - self._synced < SEMANTIC_SYNC_S:
            return
        async with self._sync_lock:
            since, self._synced = self._synced, now
            for key, data in await self.store.semantic(since - SEMANTIC_SYNC_S):
                found = entries.decode(data)
                if found is not None and found.vector is not None and found.guard is not None:
                    self.index.add(key, found.vector, found.guard, found.expires)

    # -- fill --

    def fill(
        self,
        found: Lookup,
        request: ChatRequest,
        record: RequestRecord,
        *,
        response: ChatResponse | None = None,
        chunks: list[ChatChunk] | None = None,
    ) -> None:
        """Store a finished miss in the background, if it is an answer worth giving again."""
        policy = found.policy
        if not found.write or found.hit is not None or record.provider is None or record.model is None:
            return
        folded = response if response is not None else entries.fold(chunks) if chunks else None
        if folded is None or not entries.cacheable(
            folded, tool_calls=policy.cache_tool_calls, refusals=policy.cache_refusals
        ):
            return
        now = time.time()
        semantic = found.vector is not None
        entry = CacheEntry(
            public=request.model,
            namespace=namespace(policy, record.context.key_id),
            provider=record.provider,
            model=record.model,
            request_id=record.context.request_id,
            created=now,
            expires=now + policy.ttl_s,
            response=response,
            chunks=chunks if response is None else None,
            vector=found.vector,
            guard=found.guard if semantic else None,
        )
        data = entries.encode(entry)
        if len(data) > policy.max_entry_bytes:
            return
        task = asyncio.get_running_loop().create_task(self._put(found.key, data, entry, policy))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _put(self, key: str, data: bytes, entry: CacheEntry, policy: CachePolicy) -> None:
        try:
            await self.store.put(key, data, policy.ttl_s, entry.public, entry.namespace)
        except Exception as exc:
            self._failed("store failed; the answer was not cached", exc)
            return
        self.counts.stored += 1
        if entry.vector is not None and entry.guard is not None:
            self.index.add(key, entry.vector, entry.guard, entry.expires)

    def _failed(self, what: str, error: Exception) -> None:
        """Count a store failure; log it at most every WARN_EVERY_S, so a dead Redis is one line, not one per request."""
        self.counts.store_errors += 1
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning("response cache (%s store): %s: %s", self.store.kind, what, error or type(error).__name__)

    # -- operations --

    async def settle(self) -> None:
        """Wait for the fills in flight (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def stats(self) -> dict[str, object]:
        try:
            stored: StoreStats | None = await self.store.stats()
        except Exception:
            stored = None
        counts = self.counts
        lookups = counts.hits + counts.semantic_hits + counts.misses
        return {
            "store": self.store.kind,
            "entries": stored.entries if stored else None,
            "bytes": stored.bytes if stored else None,
            "max_bytes": stored.max_bytes if stored else None,
            "available": stored is not None,
            "hits": counts.hits,
            "semantic_hits": counts.semantic_hits,
            "misses": counts.misses,
            "hit_rate": round((counts.hits + counts.semantic_hits) / lookups, 4) if lookups else None,
            "stored": counts.stored,
            "store_errors": counts.store_errors,
            "semantic_index": len(self._index) if self._index is not None else 0,
        }

    async def clear(self, public: str | None = None, key_id: str | None = None) -> int:
        removed = await self.store.clear(public, key_id)
        if self._index is not None:
            self._index.clear()
        self._synced = 0.0  # re-read what is left
        return removed

    async def aclose(self) -> None:
        await self.settle()
        await self.store.aclose()


def _key(request: ChatRequest, policy: CachePolicy, record: RequestRecord) -> str:
    """`<e|s>:<model hex>:<namespace hex>:<digest>`: stores can clear by model or key from the name alone."""
    space = namespace(policy, record.context.key_id)
    digest = exact_key(request, policy, record.context.key_id)
    return f"{'s' if policy.semantic else 'e'}:{request.model.encode().hex()}:{space.encode().hex()}:{digest}"
