"""The operations a shared store performs atomically, and what they answer.

Each is one round trip, decided on the server side (a Lua script on Redis, one step of the
holder's event loop on one box), so several instances never over-admit between a read and
a write. Names are scoped by the caller: `provider.<name>` or `key.<id>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

Handler = Callable[[str, bytes], None]
"""Called with (channel, message) for every message published on a shared channel."""

LIMITS = ("", "rpm", "tpm", "concurrency")


class Grant(msgspec.Struct, array_like=True):
    """The answer to `acquire`: `wait` 0.0 when admitted, else seconds until it may be (inf: a slot)."""

    wait: float = 0.0
    limit: str = ""  # which limit refused: rpm, tpm or concurrency
    spend: float | None = None  # the key's spend this period, when asked for


class Ask(msgspec.Struct, array_like=True, frozen=True):
    """What `acquire` checks: any limit left as None is not checked."""

    rpm: int | None = None
    tpm: int | None = None
    tokens: int = 0  # taken from tpm up front; the rest settles on release
    cap: int | None = None  # max_concurrency: a lease is held until release or expiry
    lease: str | None = None
    ttl_s: float = 0.0
    spend_key: str | None = None  # also answer this spend counter, seeding it if absent
    spend_seed: float = 0.0


class SharedStore(Protocol):
    async def start(self) -> None: ...
    async def aclose(self) -> None: ...
    async def ping(self) -> None: ...

    async def acquire(self, name: str, ask: Ask) -> Grant:
        """Check and take every limit in `ask` at once, or none of them."""

    async def release(
        self, name: str, lease: str | None, tpm: int | None, tokens: int, spend_key: str | None, cost: float
    ) -> None:
        """Free a lease, settle `tokens` more (or fewer) against tpm, add `cost` to an existing spend."""

    async def renew(self, name: str, leases: list[str], ttl_s: float) -> None:
        """Push the expiry of leases still held (a killed instance's simply run out)."""

    async def incr(self, counter: str) -> int: ...

    async def publish(self, channel: str, message: bytes) -> None: ...

    def subscribe(self, handler: Handler) -> None:
        """Receive every message published on any channel (including one's own)."""

    async def heartbeat(self, instance: str, info: bytes, ttl_s: float) -> None: ...

    async def instances(self) -> list[bytes]:
        """The info of every instance whose heartbeat has not expired."""

    async def put_blob(self, key: str, value: bytes, ttl_s: float) -> None: ...
    async def get_blob(self, key: str) -> bytes | None: ...
    async def delete_blob(self, key: str) -> bool: ...
