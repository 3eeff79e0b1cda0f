"""The server's API-key check: is this key one the prediction store holds, and not revoked?

Keys are made and revoked by ``serving.store.api_keys`` (``posture keys``); this side only
reads their digests, with a short cache, and decides whether keys are required at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from serving.store.api_keys import hash_key
from serving.store.bounded import bounded_transaction
from serving.store.db import StoreTimeouts, make_engine
from serving.store.schema import ApiKey

MAX_CACHED_KEYS = 10_000
API_KEY_SCOPE = "posture.api_key"  # the ASGI scope entry that carries the verified caller's key name


class KeyCheckUnavailable(Exception):
    """The key is not cached and the database cannot be asked now."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable from elsewhere


def auth_required(settings: Any) -> bool:
    """``api_keys_required`` when set; else on unless the server binds to loopback only."""
    if settings.api_keys_required is not None:
        return bool(settings.api_keys_required)
    return not is_loopback(settings.host)


class KeyVerifier:
    """The server's check: the key's name, or None for an unknown or revoked key.

    Answers are cached for ``cache_s`` (revocation takes effect within it), concurrent
    checks of one key share one look-up, and while the database is unreachable a key
    answered before keeps its last answer rather than locking every device out.
    """

    def __init__(self, url: str, cache_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        # Bounded like the prediction store's writer: a hung database must not hold a check
        # (or the shutdown, which waits for the thread) longer than the call timeout.
        self._timeouts = StoreTimeouts()
        self._engine = make_engine(url, timeouts=self._timeouts)
        self.cache_s, self._clock = cache_s, clock
        self._cache: dict[str, tuple[str | None, float]] = {}  # digest -> (name, checked at)
        self._inflight: dict[str, asyncio.Future[str | None]] = {}

    async def verify(self, key: str) -> str | None:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit is not None and self._clock() - hit[1] < self.cache_s:
            return hit[0]
        if digest in self._inflight:
            return await asyncio.shield(self._inflight[digest])
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            name = await asyncio.to_thread(self._lookup, digest)
        except (SQLAlchemyError, OSError) as err:
            failure = KeyCheckUnavailable(str(err))
            if hit is None:
                future.set_exception(failure)
                future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
                raise failure from err
            name = hit[0]  # the database is down: a stale answer beats refusing every device
        except BaseException:  # cancelled, or an unexpected error: the waiters must not hang
            future.cancel()
            raise
        finally:
            self._inflight.pop(digest, None)
        self._remember(digest, name)
        future.set_result(name)
        return name

    def _lookup(self, digest: str) -> str | None:
        with bounded_transaction(self._engine, self._timeouts.call_s) as conn:
            return conn.execute(
                select(ApiKey.name).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            ).scalar_one_or_none()

    def _remember(self, digest: str, name: str | None) -> None:
        now = self._clock()
        if len(self._cache) >= MAX_CACHED_KEYS:  # bounded: junk keys must not grow memory
            self._cache = {d: v for d, v in self._cache.items() if now - v[1] < self.cache_s}
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
        self._cache[digest] = (name, now)

    def close(self) -> None:
        self._engine.dispose()
