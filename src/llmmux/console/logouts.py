"""Console logouts honoured by every instance on the same ledger, within `changes.POLL_S`.

A session is a signed token every process can check alone, so a logout must reach every
process that might see the cookie again. Workers of one `llmmux serve` (and instances on one
Redis) hear of it through the shared store at once (`Console`); instances that share only
the ledger's database hear of it here: each logout is an audit row (`console.logout`, its
target the session's reference, a hash of its nonce, never the token), which every process
reads through the ledger's change feed, as it reads key revocations. A process that starts
reads the logouts of the last session lifetime first, so no restart brings a session back.

    logouts = LedgerLogouts(store, sessions)
    await logouts.start()              # then: await logouts.record(session, actor)
    await logouts.aclose()
"""

from __future__ import annotations

import asyncio
import time

from .. import audit
from ..ledger.changes import Change, ChangeFeed
from ..ledger.store import Store
from ..tasks import cancel_and_wait
from .session import Session, Sessions

ACTION = "console.logout"
_SINCE = f"SELECT target FROM audit_log WHERE action = '{ACTION}' AND ts >= ?"


class LedgerLogouts:
    """Writes this process's logouts to the audit log and revokes everyone else's here."""

    def __init__(self, store: Store, sessions: Sessions) -> None:
        self.store = store
        self.sessions = sessions
        self._task: asyncio.Task[None] | None = None

    async def record(self, session: Session, actor: str) -> None:
        await audit.record(self.store, actor, ACTION, self.sessions.reference(session.nonce), None, None)

    async def start(self) -> None:
        feed = ChangeFeed(self.store, watched=(ACTION,))
        await feed.start()  # from here on the feed reports them; those before, this reads once
        for (reference,) in await self.store.fetch(_SINCE, (time.time() - self.sessions.ttl_s,)):
            self._revoke(reference)
        self._task = asyncio.create_task(feed.follow(self._take, "console logouts"), name="llmmux-console-logouts")

    async def _take(self, changes: list[Change]) -> None:
        for change in changes:
            self._revoke(change.target)

    def _revoke(self, reference: object) -> None:
        if isinstance(reference, str) and reference:
            # The row does not say when the session would have expired: a full lifetime from now bounds it.
            self.sessions.revoke_reference(reference, time.time() + self.sessions.ttl_s)

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
