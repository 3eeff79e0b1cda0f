"""The server's API-key check: is this key one the prediction store holds, not revoked, and
what may it do (its scopes)?

Keys are made and revoked by ``serving.store.api_keys`` (``posture keys``); this side only
reads their digests, with a short cache, and decides whether keys are required at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from serving.store.api_keys import hash_key, scopes_of
from serving.store.bounded import bounded_transaction
from serving.store.db import StoreTimeouts, make_engine
from serving.store.schema import ApiKey

MAX_CACHED_KEYS = 10_000
API_KEY_SCOPE = "posture.api_key"  # the ASGI scope entry that carries the verified caller's key name
API_KEY_GRANTS = "posture.api_key_scopes"  # ... and the key's scopes (a frozenset)


@dataclass(frozen=True)
class KeyGrant:
    """A valid key: its name and its scopes."""

    name: str
    scopes: frozenset[str]


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
    """The server's check: the key's name and scopes, or None for an unknown or revoked key.

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
        self._cache: dict[str, tuple[KeyGrant | None, float]] = {}  # digest -> (grant, checked at)
        self._inflight: dict[str, asyncio.Future[KeyGrant | None]] = {}

    async def verify(self, key: str) -> str | None:
        """The key's name, or None."""
        grant = await self.check(key)
        return None if grant is None else grant.name

    async def check(self, key: str) -> KeyGrant | None:
        digest = hash_key(key)
        hit = self._cache.get(digest)
        if hit is not None and self._clock() - hit[1] < self.cache_s:
            return hit[0]
        if digest in self._inflight:
            return await asyncio.shield(self._inflight[digest])
        future: asyncio.Future[KeyGrant | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            grant = await asyncio.to_thread(self._lookup, digest)
        except (SQLAlchemyError, OSError) as err:
            failure = KeyCheckUnavailable(str(err))
            if hit is None:
                future.set_exception(failure)
                future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
                raise failure from err
            grant = hit[0]  # the database is down: a stale answer beats refusing every device
        except BaseException:  # cancelled, or an unexpected error: the waiters must not hang
            future.cancel()
            raise
        finally:
            self._inflight.pop(digest, None)
        self._remember(digest, grant)
        future.set_result(grant)
        return grant

    def _lookup(self, digest: str) -> KeyGrant | None:
        with bounded_transaction(self._engine, self._timeouts.call_s) as conn:
            row = conn.execute(
                select(ApiKey.name, ApiKey.scopes).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
            ).first()
        return None if row is None else KeyGrant(row.name, frozenset(scopes_of(row.scopes)))

    def _remember(self, digest: str, grant: KeyGrant | None) -> None:
        now = self._clock()
        if len(self._cache) >= MAX_CACHED_KEYS:  # bounded: junk keys must not grow memory
            self._cache = {d: v for d, v in self._cache.items() if now - v[1] < self.cache_s}
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
        self._cache[digest] = (grant, now)

    def close(self) -> None:
        self._engine.dispose()
