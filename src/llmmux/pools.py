"""Closing a router's connection pools when its owner never does.

A `Router` used with `async with` closes its providers' pools on exit. One used without
it would leave aiohttp sessions open, and aiohttp prints "Unclosed client session" when
they are collected. `PoolCloser` closes them at the last moment it still can: when the
event loop shuts down (`asyncio.run` closes every live async generator first), or when
the router is collected while its loop runs. It does that with one suspended async
generator per loop: asyncio finalizes those itself, so nothing is polled or patched.

    closer = PoolCloser()
    closer.providers = list(router.providers.values())   # kept current on every reload
    if not closer.armed():                               # once per event loop
        await closer.arm()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from .providers.base import Provider


class PoolCloser:
    __slots__ = ("_hook", "_loop", "providers")

    def __init__(self) -> None:
        self.providers: list[Provider] = []
        self._hook: AsyncGenerator[None, None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def armed(self) -> bool:
        """Whether the running loop already has the hook (checked on every request: no await)."""
        return self._loop is asyncio.get_running_loop()

    async def arm(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop, self._hook = loop, self._at_loop_end()
        await self._hook.__anext__()  # the first step registers it with this loop, then it waits

    def disarm(self) -> None:
        """The owner closed the pools itself: nothing is left to do at the loop's end."""
        self._loop = self._hook = None

    async def _at_loop_end(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if self._hook is not None:
                for provider in self.providers:
                    with contextlib.suppress(Exception):  # closing must not fail the loop's shutdown
                        await provider.aclose()
