"""Which shared store a gateway process uses: Redis when `state.url` is set, else the holder."""

from __future__ import annotations

import asyncio
import logging

from ..config.model import StateConfig
from .client import Shared, message
from .holder import HolderStore
from .state_config import redis_url


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


def announce(state: StateConfig, channel: str, payload: bytes) -> bool:
    """Publish one message to a fleet's instances from outside them (the CLI); False if it could not."""
    url = redis_url(state)
    if url is None:
        return False
    from .redis_store import RedisStore

    password = str(state.password) if state.password is not None else None
    store = RedisStore(url, password=password, prefix=state.prefix, timeout_s=max(state.timeout_s, 2.0))

    async def send() -> None:
        try:
            await store.publish(channel, message("cli", payload))
        finally:
            await store.aclose()

    try:
        asyncio.run(send())
    except Exception as exc:
        logging.getLogger("llmmux.shared").warning("could not tell the running instances: %s", exc)
        return False
    return True
