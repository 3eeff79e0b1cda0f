"""Pseudonymous ids: device ids and client addresses are stored only as keyed hashes.

A keyed HMAC (not a bare hash) so that nobody without ``POSTURE_ANON_KEY`` can confirm a
guessed device id against the table; the same key always gives the same pseudonym, so
``posture db stats --device ID`` can still filter.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

PSEUDONYM_HEX_CHARS = 32  # 128 bits: collisions are not a concern at any realistic fleet size


@lru_cache(maxsize=65536)  # a stream logs its device id once a second: hash it once
def pseudonymize(value: str | None, key: str) -> str | None:
    """HMAC-SHA256 of ``value`` under ``key``, as 32 hex chars; ``None`` stays ``None``."""
    if value is None:
        return None
    digest = hmac.new(key.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX_CHARS]
