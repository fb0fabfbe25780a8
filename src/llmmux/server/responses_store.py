"""Stored Responses API responses: what `previous_response_id`, GET and DELETE find.

In memory, per gateway process, bounded: the least recently used response goes first once
`capacity` are held. With a shared store (`--workers N`, or `state.url` across instances)
each response is also written there with a TTL, so a continuation, GET or DELETE that
reaches another worker or instance finds it; without one, nothing survives a restart.

Each response belongs to the virtual key that created it (`owner`; None for the master key
or a caller without a key). Another key's GET, DELETE or `previous_response_id` finds
nothing, exactly as for an id that never existed; the admin (`any_owner`) finds every one.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec

from ..shared.client import Shared, SharedDown
from ..types import Message

DEFAULT_CAPACITY = 1000
"""Responses kept per gateway process; each holds its whole conversation, shared with its predecessors."""
SHARED_TTL_S = 7 * 24 * 3600.0
"""How long the shared store keeps a response (OpenAI keeps them 30 days; a gateway's memory is smaller)."""
BLOB = "response."
CHANNEL = "responses"  # a response was deleted: every process drops its copy


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as the client saw it, and the conversation a continuation builds on.

    `history` is every message up to and including this response's output, without the
    request's `instructions` (OpenAI does not carry those over).
    """

    id: str
    body: dict[str, Any]
    history: list[Message]
    owner: str | None = None  # the virtual key that created it (None: the master key, or no key)


class ResponseStore:
    """A bounded LRU of stored responses.

    >>> store = ResponseStore(capacity=2)
    >>> store.put(StoredResponse("resp_1", {}, []))
    >>> store.get("resp_1").id
    'resp_1'
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, shared: Shared | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.shared = shared
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()
        if shared is not None:
            shared.listen(CHANNEL, self._deleted_elsewhere)

    def put(self, response: StoredResponse) -> None:
        self._entries[response.id] = response
        self._entries.move_to_end(response.id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def get(self, response_id: str, owner: str | None = None, *, any_owner: bool = False) -> StoredResponse | None:
        """The response if `owner` made it (or `any_owner`); None, as for an unknown id, if not."""
        found = self._entries.get(response_id)
        if found is None or not (any_owner or found.owner == owner):
            return None
        self._entries.move_to_end(response_id)
        return found

    def delete(self, response_id: str, owner: str | None = None, *, any_owner: bool = False) -> bool:
        if self.get(response_id, owner, any_owner=any_owner) is None:
            return False
        del self._entries[response_id]
        return True

    def __len__(self) -> int:
        return len(self._entries)

    # -- across workers and instances: local first, then the shared store --

    def _deleted_elsewhere(self, sender: str, payload: bytes) -> None:
        self._entries.pop(payload.decode(), None)

    async def save(self, response: StoredResponse) -> None:
        self.put(response)
        if self.shared is not None:
            blob = msgspec.msgpack.encode(response)
            # Awaited: the client may continue from this response on another instance at once.
            with contextlib.suppress(SharedDown):
                await self.shared.call(self.shared.store.put_blob(BLOB + response.id, blob, SHARED_TTL_S))

    async def fetch(
        self, response_id: str, owner: str | None = None, *, any_owner: bool = False
    ) -> StoredResponse | None:
        """`get`, looking in the shared store too; another key's response is not found, as `get`."""
        found = self._entries.get(response_id)
        if found is None and self.shared is not None:
            try:
                blob = await self.shared.call(self.shared.store.get_blob(BLOB + response_id))
            except SharedDown:
                return None
            if blob is None:
                return None
            found = msgspec.msgpack.decode(blob, type=StoredResponse)
            self.put(found)
        return self.get(response_id, owner, any_owner=any_owner) if found is not None else None

    async def remove(self, response_id: str, owner: str | None = None, *, any_owner: bool = False) -> bool:
        if await self.fetch(response_id, owner, any_owner=any_owner) is None:
            return False
        removed = self.delete(response_id, owner, any_owner=any_owner)
        if self.shared is None:
            return removed
        try:
            removed = await self.shared.call(self.shared.store.delete_blob(BLOB + response_id)) or removed
        except SharedDown:
            return removed
        published = self.shared.publish(CHANNEL, response_id.encode())
        if published is not None:
            await published  # the other processes have dropped it before the client hears it is gone
        return removed
