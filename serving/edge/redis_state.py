"""The optional Redis (``POSTURE_REDIS_URL``) that instances share: rate-limit buckets,
stream-session state and registry look-ups.

``SharedRedis`` wraps one asyncio client with a breaker: a failed call (Redis down, or
slower than ``redis_timeout_s``) is logged once per outage and counted, and for
``RETRY_AFTER_S`` every call raises ``RedisUnavailable`` at once without touching the
network. Callers catch it and answer in-process, so a dead Redis costs a session the
shared state, never a frame's worth of waiting or the session itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from serving.logs import log_event

RETRY_AFTER_S = 2.0  # how long the breaker stays open after a failure
# A bounded pool: thousands of concurrent frames queue for a few connections instead of
# each opening one (which stalls on connect timeouts and trips the breaker under load).
POOL_CONNECTIONS = 32
POOL_WAIT_S = 1.0
T = TypeVar("T")


class RedisUnavailable(Exception):
    """Redis did not answer (now, or recently): use the in-process fallback."""


class SharedRedis:
    """One client per process, keys under ``<prefix>:``; ``call`` is the only way in."""

    def __init__(
        self,
        url: str,
        prefix: str,
        timeout_s: float,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        # No retries inside the client: the breaker and the fallback are the retry policy.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=POOL_CONNECTIONS,
            timeout=POOL_WAIT_S,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self.client = Redis(connection_pool=pool)
        self.prefix = prefix
        self._on_error = on_error
        self._retry_at = 0.0
        self._down = False

    @property
    def available(self) -> bool:
        """False while the breaker is open (a recent failure): callers go in-process at once."""
        return time.monotonic() >= self._retry_at

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def script(self, lua: str) -> Any:
        """A Lua script run atomically by Redis (EVALSHA, loaded on first use)."""
        return self.client.register_script(lua)

    async def call(self, operation: str, function: Callable[[Redis], Awaitable[T]]) -> T:
        """``function(client)``; raises ``RedisUnavailable`` when it fails or the breaker is open."""
        if time.monotonic() < self._retry_at:
            raise RedisUnavailable(operation)
        try:
            result = await function(self.client)
        except (RedisError, OSError) as err:
            self._failed(operation, err)
            raise RedisUnavailable(operation) from err
        if self._down:
            self._down = False
            log_event("redis_recovered", operation=operation)
        return result

    def _failed(self, operation: str, err: BaseException) -> None:
        self._retry_at = time.monotonic() + RETRY_AFTER_S
        if self._on_error is not None:
            self._on_error(operation)
        if not self._down:  # one line per outage, not one per frame
            self._down = True
            log_event(
                "redis_unavailable",
                logging.WARNING,
                operation=operation,
                error=str(err) or type(err).__name__,
                fallback="in-process",
                retry_in_s=RETRY_AFTER_S,
            )

    async def close(self) -> None:
        await self.client.aclose()


class AliasCache:
    """The registry's answer to "which version does the alias point at", shared by every
    instance for ``ttl_s``: N instances polling every few seconds ask MLflow about once a TTL."""

    def __init__(self, shared: SharedRedis, ttl_s: float) -> None:
        self.shared, self.ttl_ms = shared, max(1, int(ttl_s * 1000))

    async def version(self, uri: str, look_up: Callable[[], Awaitable[str | None]]) -> str | None:
        key = self.shared.key("alias", uri)
        try:
            cached = await self.shared.call("alias_get", lambda r: r.get(key))
        except RedisUnavailable:
            return await look_up()
        if cached is not None:
            text = cached.decode() if isinstance(cached, bytes) else str(cached)
            return text or None
        version = await look_up()
        try:
            await self.shared.call("alias_set", lambda r: r.set(key, version or "", px=self.ttl_ms))
        except RedisUnavailable:
            pass  # the next poll asks the registry again
        return version
