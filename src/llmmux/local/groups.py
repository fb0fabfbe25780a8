"""Swap groups: at most `max_running` of a group's managed servers run at once.

What llama-swap's groups do: servers that share a GPU take turns. A server that needs to
start stops the group's least recently used idle member; when every member is busy it
waits (up to its start timeout) for one to go idle, rather than killing requests in flight.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .errors import busy

if TYPE_CHECKING:
    from .supervisor import ManagedServer


class SwapGroup:
    def __init__(self, name: str, max_running: int) -> None:
        self.name = name
        self.max_running = max_running
        self.members: list[ManagedServer] = []
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._claimed: set[ManagedServer] = set()

    def join(self, server: ManagedServer) -> None:
        self.members.append(server)
        server.group = self
        self.max_running = min(self.max_running, server.spec.group_max)  # members disagree: the strictest wins

    def changed(self) -> None:
        """A member stopped, crashed or went idle: whoever waits for room looks again."""
        self._changed.set()

    async def make_room(self, server: ManagedServer) -> None:
        """Return once `server` may start, having stopped idle members if needed."""
        async with self._lock:  # one server makes room at a time, so two never take the same place
            try:
                await asyncio.wait_for(self._wait_for_room(server), server.spec.start_timeout)
            except TimeoutError:
                raise busy(
                    server.name,
                    f"swap group '{self.name}' is full of busy servers (at most {self.max_running} run at once)",
                ) from None
            self._claimed.add(server)

    async def _wait_for_room(self, server: ManagedServer) -> None:
        while True:
            self._claimed = {m for m in self._claimed if m.state == "starting"}
            others = [m for m in self.members if m is not server and (m.running or m in self._claimed)]
            if len(others) < self.max_running:
                return
            idle = sorted(
                (m for m in others if m.in_flight == 0 and m.state in ("ready", "crashed")), key=lambda m: m.last_used
            )
            if idle:
                await idle[0].stop(f"swapped out for {server.name} (group {self.name})")
                continue
            self._changed.clear()
            await self._changed.wait()
