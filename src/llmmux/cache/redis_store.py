"""The cache in Redis: shared by every instance, each entry with its own TTL.

Keys are `<prefix><e|s>:<model hex>:<namespace hex>:<digest>`, so `clear --model/--key` is a
SCAN over a glob-safe pattern. Semantic entries are also listed in a sorted set by write
time, so each instance's vector index picks up what the others wrote.

Redis down is a miss, never an error: a failed call marks the store down for DOWN_FOR_S,
during which calls fail at once instead of paying a connect timeout per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .store import StoreStats

CONNECT_TIMEOUT_S = 0.25
CALL_TIMEOUT_S = 0.5
DOWN_FOR_S = 1.0
SCAN_COUNT = 1000
MGET_BATCH = 500


class StoreUnavailable(Exception):
    """The store failed a moment ago; this call did not try it."""


class RedisStore:
    """`RedisStore("redis://127.0.0.1:6379/0")`: redis-py's asyncio client (hiredis parses replies)."""

    kind = "redis"

    def __init__(self, url: str, prefix: str = "llmmux:cache:", clock: Callable[[], float] = time.monotonic) -> None:
        import redis.asyncio as redis  # an optional dependency: only a redis store needs it

        self.prefix = prefix
        self._clock = clock
        self._down_until = 0.0
        self._redis: Any = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=CALL_TIMEOUT_S,
            retry_on_timeout=False,
            health_check_interval=30,
        )
        self._semantic_set = prefix + "semantic"

    async def _do(self, call: Callable[[Any], Any]) -> Any:
        if self._clock() < self._down_until:
            raise StoreUnavailable("redis was unreachable a moment ago")
        try:
            return await call(self._redis)
        except Exception:
            self._down_until = self._clock() + DOWN_FOR_S
            raise

    async def get(self, key: str) -> bytes | None:
        data = await self._do(lambda r: r.get(self.prefix + key))
        return bytes(data) if data is not None else None

    async def put(self, key: str, data: bytes, ttl_s: float, public: str, namespace: str) -> None:
        async def write(r: Any) -> None:
            async with r.pipeline(transaction=False) as pipe:
                pipe.set(self.prefix + key, data, px=max(1, int(ttl_s * 1000)))
                if key.startswith("s:"):
                    pipe.zadd(self._semantic_set, {key: time.time()})
                await pipe.execute()

        await self._do(write)

    async def clear(self, public: str | None = None, namespace: str | None = None) -> int:
        model = public.encode().hex() if public is not None else "*"
        space = f":{namespace.encode().hex()}:" if namespace is not None else ":*:"
        pattern = f"{self.prefix}[es]:{model}{space}*"

        async def delete(r: Any) -> int:
            removed = 0
            batch: list[bytes] = []
            async for name in r.scan_iter(match=pattern, count=SCAN_COUNT):
                batch.append(name)
                if len(batch) >= SCAN_COUNT:
                    removed += await self._drop(r, batch)
                    batch = []
            return removed + (await self._drop(r, batch) if batch else 0)

        return int(await self._do(delete))

    async def _drop(self, r: Any, names: list[bytes]) -> int:
        semantic = [n[len(self.prefix) :] for n in names if n[len(self.prefix) :].startswith(b"s:")]
        if semantic:
            await r.zrem(self._semantic_set, *semantic)
        return int(await r.delete(*names))

    async def stats(self) -> StoreStats:
        async def count(r: Any) -> tuple[int, int]:
            entries = size = 0
            async for name in r.scan_iter(match=f"{self.prefix}[es]:*", count=SCAN_COUNT):
                entries += 1
                size += int(await r.strlen(name))
            return entries, size

        entries, size = await self._do(count)
        return StoreStats(entries, size, self.kind)

    async def semantic(self, since: float) -> list[tuple[str, bytes]]:
        async def read(r: Any) -> list[tuple[str, bytes]]:
            keys = [k.decode() for k in await r.zrangebyscore(self._semantic_set, since, "+inf")]
            found: list[tuple[str, bytes]] = []
            gone: list[str] = []
            for at in range(0, len(keys), MGET_BATCH):
                batch = keys[at : at + MGET_BATCH]
                for key, data in zip(batch, await r.mget([self.prefix + k for k in batch]), strict=True):
                    if data is None:
                        gone.append(key)  # expired: forget it
                    else:
                        found.append((key, bytes(data)))
            if gone:
                await r.zrem(self._semantic_set, *gone)
            return found

        return list(await self._do(read))

    async def aclose(self) -> None:
        await self._redis.aclose()
