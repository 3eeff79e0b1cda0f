"""Token-bucket rate limits per key (a session, a client address).

``RateLimiter`` is the seam: the server only awaits ``allow`` and ``forget``, so a
Redis-backed limiter (one bucket shared by every worker and instance, e.g. a Lua script
doing the same arithmetic) can replace ``TokenBucketLimiter`` without touching callers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol


class RateLimiter(Protocol):
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

    def __len__(self) -> int:
        return len(self._buckets)
