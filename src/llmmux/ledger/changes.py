"""Key and team changes made outside this process reach it within `POLL_S`, through the audit log.

A change made by `llmmux keys revoke` on the ledger's database (or by another instance) is
not seen by a running gateway's in-memory key ring until it looks. Every change to a key or a
team is audited, so the audit log's newest row id is a change counter every worker and
instance can read for almost nothing (a primary-key range read that finds no rows, every
quarter second), and the rows past the last one seen name what to reload. Redis pub/sub and
the holder's channel tell the running instances sooner; this is what holds when they can't
(the CLI on one box with `--workers N`, a single process, a store that was out of reach).

>>> feed = ChangeFeed(store)                                  # doctest: +SKIP
>>> await feed.start()
>>> await feed.poll()
[Change(action='key.revoke', target='key_0123')]
>>> await feed.follow(handle, "key changes")                  # polls every POLL_S until cancelled
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .store import Store

log = logging.getLogger("llmmux")

POLL_S = 0.25
"""How often each process looks: a revoked key is refused everywhere within this plus one reload."""

BATCH = 500
WATCHED = ("key.", "team.")


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # the audit action: key.create, key.update, key.revoke, team.update, ...
    target: str | None  # the key's or team's id


class ChangeFeed:
    """The audited key and team changes past the last one this process has seen."""

    def __init__(self, store: Store, watched: tuple[str, ...] = WATCHED) -> None:
        self.store = store
        self.watched = watched  # the audit actions (or their prefixes) this feed reports
        self.seen = 0

    async def start(self) -> None:
        """Begin after the newest change: what came before is in the keys just loaded."""
        rows = await self.store.fetch("SELECT MAX(id) FROM audit_log")
        self.seen = int(rows[0][0] or 0) if rows else 0

    async def poll(self) -> list[Change]:
        rows = await self.store.fetch(
            f"SELECT id, action, target FROM audit_log WHERE id > ? ORDER BY id LIMIT {BATCH}", (self.seen,)
        )
        if not rows:
            return []
        self.seen = int(rows[-1][0])
        return [Change(str(action), target) for _, action, target in rows if str(action).startswith(self.watched)]

    async def follow(self, handle: Callable[[list[Change]], Awaitable[None]], what: str) -> None:
        """Poll every POLL_S until cancelled, handing each batch of changes to `handle`.

        A ledger out of reach is logged once per outage (naming `what` was not read), not
        every quarter second, and the feed goes on where it left off when it is back."""
        failing = False
        while True:
            await asyncio.sleep(POLL_S)
            try:
                changes = await self.poll()
            except Exception as exc:
                if not failing:
                    log.warning("could not read %s from the ledger (%s); retrying", what, type(exc).__name__)
                failing = True
                continue
            failing = False
            if changes:
                await handle(changes)
