"""Virtual keys as a component: who a secret belongs to, the keys' and teams' limits and
spend in memory (`KeyRing`), reloads from the ledger, and key CRUD.

The server's authentication middleware asks `authenticate`; the admin API changes keys
through `create_key` / `update_key` / `revoke_key`, which take effect at once here and,
with shared state, on every other worker and instance.

    keys = KeyService(router, store, KeyRing(), KeyRing(kind="team"), refresh_interval_s=60)
    key = await keys.authenticate(b"sk-llmmux-...")        # None: no such key
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .keys import KEYS_CHANNEL, KeyRing, VirtualKey, budget_starts, end_user_budget_starts, hash_secret
from .ledger import Store, keyops, teamops
from .ledger.changes import Change, ChangeFeed
from .router import Router
from .tasks import cancel_and_wait
from .teams import TEAM_CHANGED

log = logging.getLogger("llmmux.keys")

# A key the ring does not know may have been created a moment ago (by `llmmux keys create`
# or another worker), so a miss looks its hash up in the store. A flood of bad keys must not
# become a flood of queries: a missed hash is remembered for a while, and lookups are capped.
MISS_MEMORY_S = 10.0
MISS_MEMORY_MAX = 10_000
LOOKUPS_PER_S = 20


class KeyService:
    """Virtual keys for one gateway process; see the module docstring."""

    def __init__(
        self, router: Router, store: Store | None, keys: KeyRing, teams: KeyRing, refresh_interval_s: float
    ) -> None:
        self.router = router
        self.store = store
        self.keys, self.teams = keys, teams
        self.refresh_interval_s = refresh_interval_s
        # Writing ledger rows and reloading spend take turns, so a reload never misses a batch being settled.
        self.db_turn = asyncio.Lock()
        self._last_refresh = 0.0
        self._refreshing: asyncio.Future[None] | None = None
        self._misses: dict[str, float] = {}
        self._lookup_second, self._lookups = 0, 0
        self._key_loads: set[asyncio.Task[None]] = set()
        self._follower: asyncio.Task[None] | None = None
        keys.shared = teams.shared = router.shared
        if router.shared is not None:
            router.shared.listen(KEYS_CHANNEL, self._key_changed)

    def check_identity(self, key: VirtualKey) -> None:
        """Refuse a key that is expired or revoked, with its own reason."""
        self.keys.check_identity(key)

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
        async with self.db_turn:
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

    async def refresh_if_due(self) -> None:
        if time.monotonic() - self._last_refresh >= self.refresh_interval_s:
            await self.refresh()

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

    async def _reload_all(self) -> None:
        try:
            await self.refresh()
        except Exception:
            log.exception("could not reload keys and teams after a team changed on another instance")

    async def start(self) -> None:
        """Follow key and team changes made elsewhere (`llmmux keys revoke`, another instance) in the ledger."""
        feed = ChangeFeed(self._require_store())
        await feed.start()
        self._follower = asyncio.create_task(feed.follow(self._take_changes, "key changes"), name="llmmux-key-changes")

    async def aclose(self) -> None:
        await cancel_and_wait(self._follower)
        self._follower = None

    async def _take_changes(self, changes: list[Change]) -> None:
        """Key and team changes made elsewhere, seen within POLL_S."""
        if any(c.action.startswith("team.") or c.target is None for c in changes):
            await self.refresh()  # a team's change reaches its keys: reload them all
            return
        for change in changes:
            assert change.target is not None
            await self._reload_key(change.target)

    def _require_store(self) -> Store:
        if self.store is None:
            raise LookupError("virtual keys need a ledger: set ledger.path or database_url")
        return self.store
