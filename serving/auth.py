"""API keys: created once (printed, never stored), kept as SHA-256 digests in the prediction
store's ``api_keys`` table, revoked by name, and checked by the server with a short cache.

A key is ``pk_`` and 32 random bytes (URL-safe base64). With 256 bits of entropy there is
nothing to brute-force, so a plain SHA-256 is as safe as a slow KDF and costs microseconds
per check instead of milliseconds per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from features.errors import PostureError
from serving.db import connect, make_engine
from serving.schema import ApiKey, as_utc

KEY_PREFIX = "pk_"
MAX_CACHED_KEYS = 10_000
MAX_NAME_CHARS = 64


class ApiKeyError(PostureError):
    """An API key name that exists already, or is not there to revoke."""


class KeyCheckUnavailable(Exception):
    """The key is not cached and the database cannot be asked now."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    created_at: datetime
    revoked_at: datetime | None


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


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


def create_key(url: str, name: str) -> str:
    """A new key called ``name``; the caller shows it once, only its digest is stored."""
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise ApiKeyError(f"Key name {name!r} must have 1-{MAX_NAME_CHARS} characters.", "pick a shorter name.")
    key = generate_key()
    with connect(url, begin=True) as conn:
        if conn.execute(select(ApiKey.id).where(ApiKey.name == name)).first() is not None:
            raise ApiKeyError(f"There is already a key called {name!r}.", "pick another name (names stay taken after revoke).")
        conn.execute(insert(ApiKey).values(name=name, key_hash=hash_key(key), created_at=datetime.now(UTC)))
    return key


def list_keys(url: str) -> list[KeyInfo]:
    with connect(url) as conn:
        rows = conn.execute(select(ApiKey.name, ApiKey.created_at, ApiKey.revoked_at).order_by(ApiKey.created_at))
        return [KeyInfo(name, as_utc(created), as_utc(revoked)) for name, created, revoked in rows]


def revoke_key(url: str, name: str) -> datetime:
    """Revoke the key called ``name``; servers refuse it within their cache time."""
    now = datetime.now(UTC)
    with connect(url, begin=True) as conn:
        done = conn.execute(
            update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
        ).rowcount
    if not done:
        raise ApiKeyError(f"There is no active key called {name!r}.", "see `posture keys list`.")
    return now


class KeyVerifier:
    """The server's check: the key's name, or None for an unknown or revoked key.

    Answers are cached for ``cache_s`` (revocation takes effect within it), concurrent
    checks of one key share one look-up, and while the database is unreachable a key
    answered before keeps its last answer rather than locking every device out.
    """

    def __init__(self, url: str, cache_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = make_engine(url)
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
        with self._engine.connect() as conn:
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
