"""The open stream sessions of one server process, so shutdown can close them all with 1001.

``serving.stream.session.StreamSession`` adds itself when it opens and leaves when it ends;
``serving.runtime.Runtime`` holds the registry and drains it at shutdown.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class ClosableSession(Protocol):
    async def close(self, code: int, reason: str = "") -> None: ...


class SessionRegistry:
    """The open sessions, so shutdown can close them all with 1001."""

    def __init__(self) -> None:
        self._sessions: set[ClosableSession] = set()

    def add(self, session: ClosableSession) -> None:
        self._sessions.add(session)

    def discard(self, session: ClosableSession) -> None:
        self._sessions.discard(session)

    async def close_all(self, code: int, reason: str) -> None:
        await asyncio.gather(*(s.close(code, reason) for s in list(self._sessions)), return_exceptions=True)
