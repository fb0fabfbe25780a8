"""llmmux.server.responses_store: the bounded LRU behind previous_response_id, GET and DELETE."""

from __future__ import annotations

import pytest

from llmmux.router import Router
from llmmux.server.app import App
from llmmux.server.responses_store import ResponseStore, StoredResponse
from llmmux.types import Message


def stored(response_id: str) -> StoredResponse:
    return StoredResponse(response_id, {"id": response_id}, [Message(role="user", content=response_id)])


def test_the_least_recently_used_response_goes_first() -> None:
    store = ResponseStore(capacity=2)
    store.put(stored("resp_1"))
    store.put(stored("resp_2"))
    assert store.get("resp_1") is not None  # now the most recently used
    store.put(stored("resp_3"))
    assert (store.get("resp_1") is not None, store.get("resp_2"), store.get("resp_3") is not None) == (True, None, True)
    assert len(store) == 2


def test_delete_says_whether_it_found_the_response() -> None:
    store = ResponseStore()
    store.put(stored("resp_1"))
    assert store.delete("resp_1") and not store.delete("resp_1")
    assert store.get("resp_1") is None


def test_a_store_holds_at_least_one_response() -> None:
    with pytest.raises(ValueError):
        ResponseStore(capacity=0)


def test_each_app_has_its_own_store_even_on_one_router() -> None:
    # Per-app state, not a module global keyed by router: two apps never see each other's responses.
    router = Router.from_config({})
    first, second = App(router), App(router)
    first.responses.store.put(stored("resp_1"))
    assert first.responses.store.get("resp_1") is not None
    assert second.responses.store.get("resp_1") is None
