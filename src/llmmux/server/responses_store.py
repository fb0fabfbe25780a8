"""Stored Responses API responses: what `previous_response_id`, GET and DELETE find.

In memory, per gateway process, bounded: the least recently used response goes first once
`capacity` are held. Nothing survives a restart, and with `--workers N` each worker keeps
its own, so a continuation must reach the worker that stored its predecessor.

Each response belongs to the virtual key that created it (`owner`; None for the master key
or a caller without a key). Another key's GET, DELETE or `previous_response_id` finds
nothing, exactly as for an id that never existed; the admin (`any_owner`) finds every one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from ..router import Router
from ..types import Message

DEFAULT_CAPACITY = 1000
"""Responses kept per gateway process; each holds its whole conversation, shared with its predecessors."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response as the client saw it, and the conversation a continuation builds on.

    `history` is every message up to and including this response's output, without the
    request's `instructions` (OpenAI does not carry those over).
    """

    id: str
    body: dict[str, Any]
    history: list[Message]
    owner: str | None = None


class ResponseStore:
    """A bounded LRU of stored responses.

    >>> store = ResponseStore(capacity=2)
    >>> store.put(StoredResponse("resp_1", {}, []))
    >>> store.get("resp_1").id
    'resp_1'
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

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


_stores: WeakKeyDictionary[Router, ResponseStore] = WeakKeyDictionary()


def store_for(router: Router) -> ResponseStore:
    """The store of the gateway serving `router` (one per router, made on first use)."""
    store = _stores.get(router)
    if store is None:
        store = _stores[router] = ResponseStore()
    return store
