"""Redis (or Valkey) as the shared store, for instances on several machines.

Every operation that decides is one Lua script, so it is atomic on the server and costs
one round trip. Time inside the scripts is the Redis server's (`TIME`), the one clock all
instances agree on.

The client is redis-py's asyncio client with the hiredis parser: the de facto standard,
maintained by Redis, speaking to Valkey unchanged, and the lowest latency a call at c=1 of
the clients `bench/redis_clients.py` compares (coredis, valkey-glide; glide spends less CPU
a call under load). Instances lease slices of each limit (`quota.py`), so most requests
make no call at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from ..tasks import cancel_and_wait
from .state_config import client_url
from .store import SPEND_TTL_S, STREAK_TTL_S, Ask, Budget, BudgetCheck, Giveback, Grant, Handler

log = logging.getLogger("llmmux.shared")

# The bucket and lease layout the scripts share: bucket HASH {tokens, updated} at
# <prefix>b:<kind>.<name>; concurrency leases ZSET lease -> expiry at <prefix>c:<name> with
# HASH lease -> slots held at <prefix>h:<name>; spend STRING at <prefix>s:<counter>.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function level(key, cap, rate)
  local v = redis.call('HMGET', key, 'tokens', 'updated')
  local tokens, updated = tonumber(v[1]), tonumber(v[2])
  if tokens == nil then return cap end
  return math.min(cap, tokens + math.max(0, now - updated) * rate)
end
local function store(key, tokens, cap, rate)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'updated', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((cap - math.min(tokens, cap)) / rate * 1000) + 60000)
end
"""

# Per name asked, KEYS: rpm bucket, tpm bucket, lease expiries, spend, lease slots
# and ARGV: rpm, tpm, tokens, cap, lease, ttl, spend seed, rpm need, rpm more, slots need,
#           slots more, tpm need, tpm more, budget, money more   (0 / '' = not asked)
# One call may ask for several names (a key, its team, an end user): one answer each.
ACQUIRE = (
    _PRELUDE
    + """
local function spare(level, more) return math.min(more, math.max(0, math.floor(level))) end
local function acquire(K, A)
  local rpm, tpm, tokens, cap = tonumber(A[1]), tonumber(A[2]), tonumber(A[3]), tonumber(A[4])
  local rpm_need, rpm_more = tonumber(A[8]), tonumber(A[9])
  local slots_need, slots_more = tonumber(A[10]), tonumber(A[11])
  local tpm_need, tpm_more, money_more = A[12] == '1', tonumber(A[13]), tonumber(A[15])
  local spend = false
  if K[4] ~= '' then
    redis.call('SET', K[4], A[7], 'NX', 'EX', 3456000)
    spend = redis.call('GET', K[4])
  end
  local free = 0
  if cap > 0 then
    local gone = redis.call('ZRANGEBYSCORE', K[3], '-inf', now)
    if #gone > 0 then
      redis.call('HDEL', K[5], unpack(gone))
      redis.call('ZREMRANGEBYSCORE', K[3], '-inf', now)
    end
    local held = 0
    for _, n in ipairs(redis.call('HVALS', K[5])) do held = held + tonumber(n) end
    free = cap - held
    if free < slots_need then return {'inf', 'concurrency', spend, 0, 0, 0, '0'} end
  end
  local rpm_level
  if rpm > 0 then
    rpm_level = level(K[1], rpm, rpm / 60)
    if rpm_need > 0 and rpm_level < math.min(rpm_need, rpm) then
      return {tostring((math.min(rpm_need, rpm) - rpm_level) / (rpm / 60)), 'rpm', spend, 0, 0, 0, '0'}
    end
  end
  local leased = 0
  if tpm > 0 then
    local tpm_level = level(K[2], tpm, tpm / 60)
    if tpm_need then
      local need = math.min(tokens, tpm)
      if tpm_level < need then
        return {tostring((need - tpm_level) / (tpm / 60)), 'tpm', spend, 0, 0, 0, '0'}
      end
    else
      tokens = 0
    end
    leased = spare(tpm_level - tokens, tpm_more)
    if tokens + leased ~= 0 then store(K[2], tpm_level - tokens - leased, tpm, tpm / 60) end
  end
  local requests = 0
  if rpm > 0 then
    requests = rpm_need + spare(rpm_level - rpm_need, rpm_more)
    if requests > 0 then store(K[1], rpm_level - requests, rpm, rpm / 60) end
  end
  local slots = 0
  if cap > 0 and A[5] ~= '' then
    slots = math.min(slots_need + slots_more, free)
    if slots > 0 then
      local ttl = tonumber(A[6])
      redis.call('HINCRBY', K[5], A[5], slots)
      redis.call('ZADD', K[3], now + ttl, A[5])
      redis.call('EXPIRE', K[3], math.ceil(ttl) + 60)
      redis.call('EXPIRE', K[5], math.ceil(ttl) + 60)
    end
  end
  local money = 0
  if spend and A[14] ~= '' and money_more > 0 then
    money = math.max(0, math.min(money_more, tonumber(A[14]) - tonumber(spend)))
    if money > 0 then redis.call('INCRBYFLOAT', K[4], tostring(money)) end
  end
  return {'0', '', spend, requests, slots, leased, tostring(money)}
end
local answers = {}
for i = 0, #KEYS / 5 - 1 do
  answers[i + 1] = acquire({unpack(KEYS, 5 * i + 1, 5 * i + 5)}, {unpack(ARGV, 15 * i + 1, 15 * i + 15)})
end
return answers
"""
)

# KEYS: tpm bucket, lease expiries, spend, lease slots, rpm bucket
# ARGV: lease, tpm, tokens, cost, slots, rpm, requests given back
RELEASE = (
    _PRELUDE
    + """
local slots = tonumber(ARGV[5])
if ARGV[1] ~= '' and slots > 0 and redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[4], ARGV[1], -slots) <= 0 then
    redis.call('HDEL', KEYS[4], ARGV[1])
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
end
local tpm, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 and tokens ~= 0 then
  store(KEYS[1], level(KEYS[1], tpm, tpm / 60) - tokens, tpm, tpm / 60)
end
local rpm, requests = tonumber(ARGV[6]), tonumber(ARGV[7])
if rpm > 0 and requests ~= 0 then
  store(KEYS[5], level(KEYS[5], rpm, rpm / 60) + requests, rpm, rpm / 60)
end
if KEYS[3] ~= '' and tonumber(ARGV[4]) ~= 0 and redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[3], ARGV[4])
end
return 0
"""
)

# KEYS: spend counters   ARGV: cost, ttl, then (limit or '', seed) per counter
CHARGE_BUDGETS = """
local cost, ttl, over, spends = ARGV[1], tonumber(ARGV[2]), -1, {}
for i = 1, #KEYS do
  local limit, seed = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  redis.call('SET', KEYS[i], seed, 'NX')
  local spend = redis.call('INCRBYFLOAT', KEYS[i], cost)
  redis.call('EXPIRE', KEYS[i], ttl)
  spends[i] = spend
  if over < 0 and limit ~= '' and tonumber(spend) >= tonumber(limit) then over = i - 1 end
end
return {over, spends}
"""

# KEYS: the streak   ARGV: 1 (a failure) or 0 (a success), ttl
STREAK = """
if ARGV[1] == '1' then
  local n = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return n
end
redis.call('DEL', KEYS[1])
return 0
"""

# KEYS: lease expiries, lease slots   ARGV: ttl, lease...
RENEW = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1])) + 60)
redis.call('EXPIRE', KEYS[2], math.ceil(tonumber(ARGV[1])) + 60)
return 0
"""

# KEYS: the instance set, this instance's info   ARGV: instance, info, ttl
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('SET', KEYS[2], ARGV[2], 'PX', math.ceil(tonumber(ARGV[3]) * 1000))
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return 0
"""


class RedisStore:
    """The `SharedStore` operations on Redis; `prefix` keeps several gateways apart."""

    def __init__(
        self, url: str, *, password: str | None = None, prefix: str = "llmmux:", timeout_s: float = 0.5
    ) -> None:
        import redis.asyncio as redis  # imported here: an optional dependency, only for state.url

        self.prefix = prefix
        self._redis: Any = redis.Redis.from_url(
            client_url(url),
            password=password,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            health_check_interval=0,
            max_connections=256,
        )
        self._acquire = self._redis.register_script(ACQUIRE)
        self._release = self._redis.register_script(RELEASE)
        self._renew = self._redis.register_script(RENEW)
        self._charge_budgets = self._redis.register_script(CHARGE_BUDGETS)
        self._streak = self._redis.register_script(STREAK)
        self._heartbeat = self._redis.register_script(HEARTBEAT)
        self._handlers: list[Handler] = []
        self._listener: asyncio.Task[None] | None = None
        self._channel = f"{prefix}events"
        # Releases made in one turn of the event loop go to Redis in one pipeline.
        self._releases: list[tuple[list[str], list[str | int | float], asyncio.Future[None]]] = []

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="llmmux-redis-events")

    async def aclose(self) -> None:
        await cancel_and_wait(self._listener)
        await self._redis.aclose()

    async def _listen(self) -> None:
        """Follow the event channel; a lost connection is retried until it comes back."""
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        channel, _, body = bytes(message["data"]).partition(b"\n")
                        for handler in self._handlers:
                            handler(channel.decode(), body)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(0.5)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    async def ping(self) -> None:
        await self._redis.ping()

    async def acquire(self, name: str, ask: Ask) -> Grant:
        return (await self.acquire_all([(name, ask)]))[0]

    async def acquire_all(self, asks: list[tuple[str, Ask]]) -> list[Grant]:
        keys: list[str] = []
        args: list[str | int | float] = []
        for name, ask in asks:
            keys += self._acquire_keys(name, ask)
            args += _acquire_args(ask)
        answers = await self._acquire(keys=keys, args=args)
        return [_grant(answer) for answer in answers]

    def _acquire_keys(self, name: str, ask: Ask) -> list[str]:
        return [
            self._key("b", f"rpm.{name}"),
            self._key("b", f"tpm.{name}"),
            self._key("c", name),
            self._key("s", ask.spend_key) if ask.spend_key else "",
            self._key("h", name),
        ]

    async def release(
        self,
        name: str,
        lease: str | None,
        tpm: int | None,
        tokens: int,
        spend_key: str | None,
        cost: float,
        back: Giveback | None = None,
    ) -> None:
        back = back or Giveback()
        keys = [
            self._key("b", f"tpm.{name}"),
            self._key("c", name),
            self._key("s", spend_key) if spend_key else "",
            self._key("h", name),
            self._key("b", f"rpm.{name}"),
        ]
        args: list[str | int | float] = [lease or "", tpm or 0, tokens, repr(cost), back.slots, back.rpm or 0]
        args.append(back.requests)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._releases:
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(self._send_releases()))
        self._releases.append((keys, args, done))
        await done

    async def _send_releases(self) -> None:
        batch, self._releases = self._releases, []
        try:
            if len(batch) == 1:  # a pipeline asks SCRIPT EXISTS first: one command more, for nothing
                await self._release(keys=batch[0][0], args=batch[0][1])
            else:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for keys, args, _ in batch:
                        await self._release(keys=keys, args=args, client=pipe)
                    await pipe.execute()
        except Exception as exc:
            for _, _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, _, done in batch:
            if not done.done():
                done.set_result(None)

    async def renew(self, name: str, leases: list[str], ttl_s: float) -> None:
        if leases:
            await self._renew(keys=[self._key("c", name), self._key("h", name)], args=[ttl_s, *leases])

    async def charge_budgets(self, budgets: list[Budget], cost: float) -> BudgetCheck:
        if not budgets:
            return BudgetCheck([])
        args: list[str | int | float] = [repr(float(cost)), int(SPEND_TTL_S)]
        for budget in budgets:
            args += ["" if budget.limit is None else repr(float(budget.limit)), repr(float(budget.seed))]
        keys = [self._key("s", budget.counter) for budget in budgets]
        over, spends = await self._charge_budgets(keys=keys, args=args)
        return BudgetCheck([float(s) for s in spends], int(over))

    async def streak(self, counter: str, failed: bool) -> int:
        return int(await self._streak(keys=[self._key("f", counter)], args=[1 if failed else 0, STREAK_TTL_S]))

    async def incr(self, counter: str) -> int:
        return int(await self._redis.incr(self._key("n", counter)))

    async def publish(self, channel: str, message: bytes) -> None:
        await self._redis.publish(self._channel, channel.encode() + b"\n" + message)

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    async def heartbeat(self, instance: str, info: bytes, ttl_s: float) -> None:
        await self._heartbeat(keys=[self._key("i", ""), self._key("i", instance)], args=[instance, info, ttl_s])

    async def instances(self) -> list[bytes]:
        ids = await self._redis.zrange(self._key("i", ""), 0, -1)
        if not ids:
            return []
        infos = await self._redis.mget([self._key("i", i.decode()) for i in ids])
        return [bytes(info) for info in infos if info is not None]

    async def put_blob(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._redis.set(self._key("r", key), value, px=max(1, int(ttl_s * 1000)))

    async def get_blob(self, key: str) -> bytes | None:
        found = await self._redis.get(self._key("r", key))
        return None if found is None else bytes(found)

    async def delete_blob(self, key: str) -> bool:
        return bool(await self._redis.delete(self._key("r", key)))


def _acquire_args(ask: Ask) -> list[str | int | float]:
    return [
        ask.rpm or 0,
        ask.tpm or 0,
        ask.tokens,
        ask.cap or 0,
        ask.lease or "",
        ask.ttl_s,
        repr(ask.spend_seed),
        ask.rpm_need,
        ask.rpm_more,
        ask.slots_need,
        ask.slots_more,
        1 if ask.tpm_need else 0,
        ask.tpm_more,
        "" if ask.budget is None else repr(float(ask.budget)),
        repr(float(ask.money_more)),
    ]


def _grant(answer: list[Any]) -> Grant:
    wait, limit, spend, requests, slots, tokens, money = answer
    return Grant(
        math.inf if wait == b"inf" else float(wait),
        limit.decode(),
        None if spend is None else float(spend),
        int(requests),
        int(slots),
        int(tokens),
        float(money),
    )
