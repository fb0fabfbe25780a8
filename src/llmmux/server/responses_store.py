"""Stored Responses API responses: what `previous_response_id`, GET and DELETE find.

In memory, per gateway process, bounded: the least recently used response goes first once
`capacity` are held. With a shared store (`--workers N`, or `state.url` across instances)
each response is also written there with a TTL, so a continuation, GET or DELETE that
reaches another worker or instance finds it; without one, nothing survives a restart.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import msgspec

from ..router import Router
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

    def get(self, response_id: str) -> StoredResponse | None:
        found = self._entries.get(response_id)
        if found is not None:
            self._entries.move_to_end(response_id)
        return found

    def delete(self, response_id: str) -> bool:
        return self._entries.pop(response_id, None) is not None

    def __len__(self) -> int:
        return len(self._entries)

    # -- across workers and instances: local first, then the shared store --

    def _deleted_elsewhere(self, sender: str, payload: bytes) -> None:
        self.delete(payload.decode())

    async def save(self, response: StoredResponse) -> None:
        self.put(response)
        if self.shared is not None:
            blob = msgspec.msgpack.encode(response)
            # Awaited: the client may continue from this response on another instance at once.
            with contextlib.suppress(SharedDown):
                await self.shared.call(self.shared.store.put_blob(BLOB + response.id, blob, SHARED_TTL_S))

    async def fetch(self, response_id: str) -> StoredResponse | None:
        found = self.get(response_id)
        if found is not None or self.shared is None:
            return found
        try:
            blob = await self.shared.call(self.shared.store.get_blob(BLOB + response_id))
        except SharedDown:
            return None
        if blob is None:
            return None
        found = msgspec.msgpack.decode(blob, type=StoredResponse)
        self.put(found)
        return found

    async def remove(self, response_id: str) -> bool:
        removed = self.delete(response_id)
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


_stores: WeakKeyDictionary[Router, ResponseStore] = WeakKeyDictionary()


def store_for(router: Router) -> ResponseStore:
    """The store of the gateway serving `router` (one per router, made on first use)."""
    store = _stores.get(router)
    if store is None:
        store = _stores[router] = ResponseStore(shared=router.shared)
    return store
