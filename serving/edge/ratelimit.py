"""Token-bucket rate limits per key (a session, a client address).

``RateLimiter`` is the seam: the server only awaits ``allow`` and ``forget``, so the
Redis-backed ``RedisTokenBucketLimiter`` (one bucket shared by every worker and instance,
a Lua script doing the same arithmetic) replaces ``TokenBucketLimiter`` when
``POSTURE_REDIS_URL`` is set, without touching callers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from serving.edge.redis_state import RedisUnavailable, SharedRedis


class RateLimiter(Protocol):
    @property
    def answers_at_once(self) -> bool:
        """Whether ``allow`` answers without waiting (so checks one after another cost nothing
        more than checks side by side); False where checks wait to go to Redis together."""
        ...

    async def allow(self, key: str, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; False when it has too few."""
        ...

    async def forget(self, key: str) -> None:
        """Drop ``key``'s bucket (a closed session)."""
        ...


class TokenBucketLimiter:
    """In-process buckets: ``rate_per_s`` tokens a second, at most ``burst`` saved up.

    ``rate_per_s <= 0`` turns limiting off. Buckets idle long enough to be full again are
    pruned, since a missing bucket means exactly that: full.
    """

    PRUNE_EVERY = 4096  # calls between sweeps of idle buckets

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(rate_per_s)
        self.burst = max(float(burst), 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._calls = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    @property
    def answers_at_once(self) -> bool:
        return True

    async def allow(self, key: str, cost: float = 1.0) -> bool:
        return self.take(key, cost)

    async def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def take(self, key: str, cost: float = 1.0) -> bool:
        """The synchronous core of ``allow``."""
        if not self.enabled:
            return True
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= cost
        self._buckets[key] = (tokens - cost if allowed else tokens, now)
        self._calls += 1
        if self._calls % self.PRUNE_EVERY == 0:
            self._prune(now)
        return allowed

    def _prune(self, now: float) -> None:
        refill_s = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill_s}


# KEYS: buckets, each a hash {tokens, at}. ARGV: rate per second, burst, then each key's cost.
# Returns 1/0 per key. Atomic read-refill-take on Redis's own clock, so instances with skewed
# clocks share a bucket fairly; a key twice in one call is taken from twice, in order. A
# missing bucket is a full one: it expires once it would be full again.
TOKEN_BUCKET_LUA = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local stamp = string.format('%.6f', now)
local allowed = {}
for i, key in ipairs(KEYS) do
  local cost = tonumber(ARGV[2 + i])
  local bucket = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(bucket[1]) or burst
  local at = tonumber(bucket[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
  allowed[i] = 0
  if tokens >= cost then
    tokens = tokens - cost
    allowed[i] = 1
  end
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', stamp)
  redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
end
return allowed
"""
MAX_KEYS_PER_CALL = 512


class RedisTokenBucketLimiter:
    """The same buckets in Redis, shared by every worker and instance behind the proxy.

    The checks of one event-loop turn go to Redis together, one script call for all of them:
    a client-side round trip costs ~120 us of CPU, so one per frame would eat the server at
    thousands of frames a second. Keys starting with one of ``local_prefixes`` stay
    in-process: a session's own bucket lives and dies with its connection on one instance.
    While Redis is unavailable every key falls back to in-process buckets (per instance, so
    the effective limit is briefly N times looser).
    """

    def __init__(
        self,
        shared: SharedRedis,
        rate_per_s: float,
        burst: float,
        name: str,
        local_prefixes: tuple[str, ...] = ("session:",),
    ) -> None:
        self.local = TokenBucketLimiter(rate_per_s, burst)
        self.shared, self.name, self.local_prefixes = shared, name, local_prefixes
        self._script = shared.script(TOKEN_BUCKET_LUA)
        self._pending: list[tuple[str, float, asyncio.Future[bool]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def answers_at_once(self) -> bool:
        return not self.local.enabled  # off: every check passes at once

    async def allow(self, key: str, cost: float = 1.0) -> bool:
        if not self.local.enabled or key.startswith(self.local_prefixes) or not self.shared.available:
            return self.local.take(key, cost)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((key, cost, future))
        if len(self._pending) == 1:  # the first of this turn: flush on the next one, with the rest
            self._schedule_flush()
        return await future

    def _schedule_flush(self) -> None:
        task = asyncio.create_task(self._flush())
        self._tasks.add(task)  # held, so the task is not garbage-collected mid-flight
        task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        batch, self._pending = self._pending[:MAX_KEYS_PER_CALL], self._pending[MAX_KEYS_PER_CALL:]
        if self._pending:  # more than one call's worth: the rest go in another call
            self._schedule_flush()
        keys = [self.shared.key("rl", self.name, key) for key, _, _ in batch]
        args = [self.local.rate, self.local.burst, *(cost for _, cost, _ in batch)]
        try:
            answers = await self.shared.call("rate_limit", lambda r: self._script(keys=keys, args=args, client=r))
        except RedisUnavailable:
            answers = [self.local.take(key, cost) for key, cost, _ in batch]
        for (_, _, future), allowed in zip(batch, answers):
            if not future.done():
                future.set_result(bool(allowed))

    async def forget(self, key: str) -> None:
        await self.local.forget(key)  # shared buckets expire by themselves


def make_limiter(rate_per_s: float, burst: float, shared: SharedRedis | None, name: str) -> RateLimiter:
    """Shared through Redis when there is one, else in-process."""
    if shared is None:
        return TokenBucketLimiter(rate_per_s, burst)
    return RedisTokenBucketLimiter(shared, rate_per_s, burst, name)
