"""A stream session driven by calls rather than a socket loop: the Sensor Logger push, MQTT.

Each call feeds frames to the session under the lock (one call at a time, in order) and gets
back the events those frames caused, so a transport answers with them in its own way. A
session that no call has fed for ``idle_close_s`` is closed with 1000, which ends it as a
client's normal close does (its saved state is dropped).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import numpy as np

from serving.logs import log_event
from serving.stream.events import Event, SessionClosed
from serving.stream.protocol import CLOSE_INTERNAL_ERROR
from serving.stream.services import Peer, SessionServices
from serving.stream.session import Cut, Incoming, StreamSession

IDLE_CLOSE_CODE = 1000


class DirectSession:
    def __init__(
        self,
        services: SessionServices,
        peer: Peer,
        idle_close_s: float,
        on_end: Callable[[DirectSession], None] = lambda _: None,
    ) -> None:
        self.on_end = on_end  # told when the session has ended (to forget it)
        self.lock = asyncio.Lock()  # held by whoever feeds the session, and by its end
        self.closed = False
        self.idle_close_s = idle_close_s
        self.session = StreamSession(services, self, peer, resumable=False)  # the server makes its hello
        self._events: list[Event] = []
        self._loop = asyncio.get_running_loop()
        self._fed_at = self._loop.time()
        self._idle: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None
        self._finished = False
        self.session.open()
        self._rearm()

    @property
    def close_code(self) -> int | None:
        return self.session.close_code

    async def feed(self, frames: Iterable[Incoming]) -> list[Event]:
        """Hand ``frames`` to the session (the caller holds ``lock``); the events they caused."""
        self._fed_at = self._loop.time()  # the idle timer reads it when it fires
        try:
            for frame in frames:
                await self.session.receive(frame)
        except Exception as err:
            await self.fail(err)
        return self.take_events()

    # Feeding in two steps, so that a caller can have many sessions' windows predicted at
    # once (the MQTT lane): ``cut`` a frame, predict the cut's windows, ``deliver`` them.
    # The caller holds ``lock`` from the cut to the delivery.

    async def cut(self, frame: Incoming) -> Cut | None:
        """The windows ``frame`` completed, if any (its other events wait in ``take_events``)."""
        self._fed_at = self._loop.time()
        try:
            return await self.session.cut(frame)
        except Exception as err:
            await self.fail(err)
            return None

    async def deliver(self, cut: Cut, probabilities: np.ndarray) -> None:
        try:
            await self.session.deliver(cut, probabilities)
        except Exception as err:
            await self.fail(err)

    def take_events(self) -> list[Event]:
        """The events since the last call, in order."""
        events, self._events = self._events, []
        return events

    async def fail(self, err: Exception) -> None:
        """A ``SessionClosed`` ends the session with its code; a bug ends it with 1011, never the caller."""
        if isinstance(err, SessionClosed):
            await self.session.close(err.code, err.reason)
            return
        log_event("session_failed", logging.ERROR, session_id=self.session.id, error=repr(err))
        await self.session.close(CLOSE_INTERNAL_ERROR, "internal error")

    # The session's outlet: events wait for the call that caused them.

    async def send(self, event: Event) -> None:
        if not self.closed:
            self._events.append(event)

    async def close(self, code: int, reason: str) -> None:
        """The session ended (a limit, shutdown, idle): finish it now, or after the call feeding it."""
        self.closed = True
        if self._idle is not None:
            self._idle.cancel()
        if self.lock.locked():
            self._ending = asyncio.create_task(self._end(), name=f"end-{self.session.id}")
        else:
            await self._end()

    async def _end(self) -> None:
        async with self.lock:
            if not self._finished:
                self._finished = True
                try:
                    await self.session.finish()
                finally:
                    self.on_end(self)

    def _rearm(self) -> None:
        """One timer at a time, moved on when it fires rather than at every call (a timer per
        frame cost thousands of timers a second for MQTT devices)."""
        self._idle = self._loop.call_at(self._fed_at + self.idle_close_s, self._expire)

    def _expire(self) -> None:
        if self._loop.time() < self._fed_at + self.idle_close_s:
            self._rearm()  # fed since: wait for the rest
            return
        self._ending = asyncio.create_task(self.session.close(IDLE_CLOSE_CODE, "idle"), name="idle-close")
