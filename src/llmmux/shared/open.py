"""Which shared store a gateway process uses: Redis when `state.url` is set, else the holder."""

from __future__ import annotations

from ..config.model import StateConfig
from .client import Shared
from .holder import HolderStore
from .settings import redis_url


def open_shared(state: StateConfig, holder: str | None, workers: int = 1) -> Shared | None:
    """The `Shared` handle for one worker (not started), or None for a lone in-memory process."""
    url = redis_url(state)
    if url is not None:
        from .redis_store import RedisStore

        password = str(state.password) if state.password is not None else None
        store = RedisStore(url, password=password, prefix=state.prefix, timeout_s=state.timeout_s)
        return Shared(store, on_failure=state.on_failure, timeout_s=state.timeout_s, kind="redis")
    if holder is None:
        return None
    return Shared(
        HolderStore(holder),
        on_failure=state.on_failure,
        timeout_s=state.timeout_s,
        expected_instances=workers,
        kind="holder",
    )
