"""Where stream-session snapshots wait for a client that reconnects: in this process, or in
Redis so that another instance can resume the session (docs/protocol.md, "Resuming").

Stores keep one snapshot (bytes, ``serving/stream/snapshot.py``) per session id with an
owner (the connection that last wrote it): a resume claims the session, and from then on
saves by the old connection (say, one the old instance has not noticed is dead yet) are
refused, so they can never overwrite the newer state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from serving.edge.redis_state import RedisUnavailable, SharedRedis

Snapshot = Callable[[], bytes]  # a session's state, serialised when the store needs it


class SessionStore(Protocol):
    async def save(
        self, session_id: str, owner: str, auth: str | None, snapshot: Snapshot | None, live: bool = False
    ) -> bool:
        """Store (``snapshot`` None: delete) the session's state; False when another connection owns it now.

        ``live``: the session is still open in this process and saves again after every
        window, so a store may keep ``snapshot`` and call it only when the state is claimed.
        """
        ...

    async def claim(self, session_id: str, owner: str, auth: str | None) -> bytes | None:
        """Become the session's owner and get its state; None when unknown, expired, or another key's."""
        ...


class LocalSessionStore:
    """In-process (no Redis): a client that reconnects to the same instance resumes.

    An open session's state is read only when a reconnecting client claims it (so a
    window costs no serialising), and its time-to-live starts when the session ends.
    """

    PRUNE_EVERY = 1024  # saves between sweeps of expired sessions

    def __init__(self, ttl_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self._clock = ttl_s, clock
        # id -> (owner, auth, state or live snapshot, expires)
        self._entries: dict[str, tuple[str, str, bytes | Snapshot, float]] = {}
        self._saves = 0

    def _live(self, session_id: str) -> tuple[str, str, bytes | Snapshot, float] | None:
        entry = self._entries.get(session_id)
        return entry if entry is not None and entry[3] > self._clock() else None

    async def save(
        self, session_id: str, owner: str, auth: str | None, snapshot: Snapshot | None, live: bool = False
    ) -> bool:
        entry = self._live(session_id)
        if entry is not None and entry[0] != owner:
            return False
        if snapshot is None:
            self._entries.pop(session_id, None)
            return True
        if live:
            self._entries[session_id] = (owner, auth or "", snapshot, math.inf)
            return True
        self._entries[session_id] = (owner, auth or "", snapshot(), self._clock() + self.ttl_s)
        self._saves += 1
        if self._saves % self.PRUNE_EVERY == 0:
            now = self._clock()
            self._entries = {key: value for key, value in self._entries.items() if value[3] > now}
        return True

    async def claim(self, session_id: str, owner: str, auth: str | None) -> bytes | None:
        entry = self._live(session_id)
        if entry is None or entry[1] != (auth or ""):
            return None
        state = entry[2] if isinstance(entry[2], bytes) else entry[2]()  # an open session: its state now
        self._entries[session_id] = (owner, entry[1], state, self._clock() + self.ttl_s)
        return state


# KEYS[1]: the session, a hash {owner, auth, state}. ARGV: owner, auth, state ('' deletes), ttl ms.
SAVE_LUA = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'auth', ARGV[2], 'state', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
# KEYS[1]: the session. ARGV: new owner, auth, ttl ms. The state, or nil (unknown, or another key's).
CLAIM_LUA = """
if redis.call('HGET', KEYS[1], 'auth') ~= ARGV[2] then return false end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('HGET', KEYS[1], 'state')
"""


class RedisSessionStore:
    """Shared by every instance: a stream cut off from one instance resumes on another.

    While Redis is unavailable a save is skipped (the session goes on; a resume may then
    repeat the windows since the last saved state) and a claim finds nothing.
    """

    def __init__(self, shared: SharedRedis, ttl_s: float) -> None:
        self.shared, self.ttl_ms = shared, max(1, int(ttl_s * 1000))
        self._save, self._claim = shared.script(SAVE_LUA), shared.script(CLAIM_LUA)

    async def save(
        self, session_id: str, owner: str, auth: str | None, snapshot: Snapshot | None, live: bool = False
    ) -> bool:
        args = [owner, auth or "", snapshot() if snapshot is not None else b"", self.ttl_ms]
        key = self.shared.key("session", session_id)
        try:
            return bool(await self.shared.call("session_save", lambda r: self._save(keys=[key], args=args, client=r)))
        except RedisUnavailable:
            return True

    async def claim(self, session_id: str, owner: str, auth: str | None) -> bytes | None:
        args = [owner, auth or "", self.ttl_ms]
        key = self.shared.key("session", session_id)
        try:
            return await self.shared.call("session_claim", lambda r: self._claim(keys=[key], args=args, client=r))
        except RedisUnavailable:
            return None


def make_session_store(shared: SharedRedis | None, ttl_s: float) -> SessionStore:
    return LocalSessionStore(ttl_s) if shared is None else RedisSessionStore(shared, ttl_s)
