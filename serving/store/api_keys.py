"""API keys: created once (printed, never stored), kept as SHA-256 digests in the prediction
store's ``api_keys`` table, and revoked by name (``posture keys``). The server checks them
with ``serving.edge.keys.KeyVerifier``.

A key is ``pk_`` and 32 random bytes (URL-safe base64). With 256 bits of entropy there is
nothing to brute-force, so a plain SHA-256 is as safe as a slow KDF and costs microseconds
per check instead of milliseconds per request.

Every key may stream and predict; a scope grants more (``KEY_SCOPES``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from features.errors import PostureError
from serving.store.db import connect
from serving.store.schema import ApiKey, as_utc

KEY_PREFIX = "pk_"
MAX_NAME_CHARS = 64
RECORD_SCOPE = "record"
KEY_SCOPES = {RECORD_SCOPE: "have stream sessions recorded as labelled data (POSTURE_RECORDING_ENABLED)"}


class ApiKeyError(PostureError):
    """An API key name that exists already, or is not there to revoke."""


@dataclass(frozen=True)
class KeyInfo:
    name: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: tuple[str, ...] = ()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def scopes_of(stored: str | None) -> tuple[str, ...]:
    return tuple(stored.split()) if stored else ()


def create_key(url: str, name: str, scopes: Sequence[str] = ()) -> str:
    """A new key called ``name`` with ``scopes``; the caller shows it once, only its digest is stored."""
    if not 0 < len(name) <= MAX_NAME_CHARS:
        raise ApiKeyError(f"Key name {name!r} must have 1-{MAX_NAME_CHARS} characters.", "pick a shorter name.")
    unknown = [scope for scope in scopes if scope not in KEY_SCOPES]
    if unknown:
        raise ApiKeyError(f"Unknown scope {unknown[0]!r}.", f"use one of: {', '.join(KEY_SCOPES)}.")
    key = generate_key()
    with connect(url, begin=True) as conn:
        if conn.execute(select(ApiKey.id).where(ApiKey.name == name)).first() is not None:
            raise ApiKeyError(
                f"There is already a key called {name!r}.", "pick another name (names stay taken after revoke)."
            )
        conn.execute(
            insert(ApiKey).values(
                name=name,
                key_hash=hash_key(key),
                created_at=datetime.now(UTC),
                scopes=" ".join(sorted(set(scopes))) or None,
            )
        )
    return key


def list_keys(url: str) -> list[KeyInfo]:
    with connect(url) as conn:
        rows = conn.execute(
            select(ApiKey.name, ApiKey.created_at, ApiKey.revoked_at, ApiKey.scopes).order_by(ApiKey.created_at)
        )
        return [
            KeyInfo(name, as_utc(created), as_utc(revoked), scopes_of(scopes))
            for name, created, revoked, scopes in rows
        ]


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
