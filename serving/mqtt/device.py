"""One device's frames, in arrival order, through one ``DirectSession``.

A device's first frames, and any that must wait for it, are queued and fed by the device's
own task, so its windows are cut in order while other devices go on concurrently. Once its
session is open and nothing else feeds it (``steady``), the bridge hands its frames to the
lane (serving/mqtt/lane.py), which cuts many devices' frames together. The session starts
with the device's hello (its retained ``hello`` topic, or a hello sent on its ``imu``
topic), and ends after ``idle_close_s`` without a frame; the next frame starts a
new one. Frames that arrive before any hello wait up to ``hello_wait_s`` for it (after a
reconnect the broker delivers the queued frames before the retained hellos).

QoS 1 is at least once: a frame can come twice (a broker restart, a lost PUBACK). A JSON
frame with the ``t0`` and row count of a recent frame is such a redelivery and is dropped; a
``t0`` further back than ``REBOOT_S`` means the device's clock restarted (a reboot), and
starts a new session.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from serving.logs import log_event
from serving.stream.direct import DirectSession
from serving.stream.events import Event, Prediction, Ready, RecordingState, Rejected
from serving.stream.messages import message_of
from serving.stream.protocol import FrameError, FrameTooBig, Hello, LabelChange, Samples, parse_binary, parse_text
from serving.stream.services import Peer, SessionServices
from serving.stream.session import Incoming

REBOOT_S = 30.0  # a t0 this far back is a restarted device clock, not a redelivered frame
RECENT_FRAMES = 1024  # frames remembered to drop their redeliveries (~3 min of 5 frames/s)
QUIET_CLOSES = (1000, 1001)  # idle and shutdown: nothing for the device to act on
GO_ON, RESTART, AGAIN = 0, 1, 2  # after a frame: go on; end the session; end it and feed the frame to the next
RESTART_REASON = "new hello or restarted device clock"


@dataclass(frozen=True)
class DeviceContext:
    """What every device of a bridge shares."""

    services: SessionServices
    publish: Callable[[str, str, bytes], None]  # (device_id, kind, payload)
    idle_close_s: float
    hello_wait_s: float
    max_frame_bytes: int
    max_samples: int
    on_duplicate: Callable[[], None]


class DeviceStream:
    def __init__(self, device_id: str, context: DeviceContext) -> None:
        self.device_id, self.context = device_id, context
        self.hello: Hello | None = None
        self.hello_seen = asyncio.Event()
        self.direct: DirectSession | None = None
        self._inbox: deque[tuple[bytes, bool]] = deque()  # (payload, binary)
        self._task: asyncio.Task[None] | None = None
        self._recent: deque[tuple[float, int]] = deque(maxlen=RECENT_FRAMES)  # (t0, rows) of the last frames fed
        self._seen: set[tuple[float, int]] = set()
        self._last_t0: float | None = None
        self.lane_frames = 0  # frames the bridge's lane holds (serving/mqtt/lane.py): the next ones go there too

    # --- in ---------------------------------------------------------------------------------

    def receive(self, payload: bytes, binary: bool) -> None:
        self._inbox.append((payload, binary))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"mqtt-{self.device_id}")

    def set_hello(self, payload: bytes) -> None:
        """A retained hello (an empty payload clears it). A new layout ends the open session."""
        if not payload:
            self.hello = None
            return
        try:
            frame = parse_text(payload.decode("utf-8"), 0, 0)
            if not isinstance(frame, Hello):
                raise FrameError("bad_hello", "the hello topic takes a hello message")
        except (FrameError, UnicodeDecodeError) as err:
            self._refuse(getattr(err, "code", "bad_hello"), getattr(err, "detail", "a hello must be UTF-8 JSON"))
            return
        self._take_hello(frame)

    @property
    def busy(self) -> bool:
        """Frames are being fed on the device's own task (its first frames, a new session...)."""
        return self._task is not None

    @property
    def steady(self) -> bool:
        """An open session that nothing else is feeding: the lane may cut this device's frames."""
        direct = self.direct
        return direct is not None and not direct.closed and self._task is None and not direct.lock.locked()

    # --- the session ---------------------------------------------------------------------------

    def _take_hello(self, frame: Hello, end_session: bool = True) -> bool:
        """Keep the device's hello; True when it changed the layout of an open session, which
        then ends (now, or by the caller feeding it) so the next frame starts with the new one."""
        hello = Hello(self.device_id, frame.rate_hz, frame.channels, record=frame.record)  # the topic names the device
        changed = hello != self.hello and self.direct is not None and not self.direct.closed
        self.hello = hello
        self.hello_seen.set()
        if changed and end_session and self.direct is not None and not self.busy:
            asyncio.get_running_loop().create_task(self.direct.close(1000, "new hello"), name="mqtt-rehello")
        return changed

    async def _drain(self) -> None:
        try:
            while self._inbox:
                if self.hello is None and not self.hello_seen.is_set():
                    try:
                        await asyncio.wait_for(self.hello_seen.wait(), self.context.hello_wait_s)
                    except asyncio.TimeoutError:
                        self.hello_seen.set()  # go on with the model's rate and channels
                batch = list(self._inbox)
                self._inbox.clear()
                await self._feed(batch)
        except Exception as err:  # a bug costs this batch, never the bridge
            log_event("mqtt_device_failed", logging.ERROR, error=repr(err))
        finally:
            self._task = None
            if self._inbox:  # left by a failure: go on with them
                self._task = asyncio.get_running_loop().create_task(self._drain(), name=f"mqtt-{self.device_id}")

    async def _feed(self, batch: list[tuple[bytes, bool]]) -> None:
        """Feed the batch; a new hello or a restarted device clock ends the session mid-batch."""
        pending = deque(batch)
        while pending:
            direct = await self._session()
            restart = GO_ON
            async with direct.lock:
                frames = []
                while pending and restart == GO_ON:
                    payload, binary = pending.popleft()
                    frame, restart = self.incoming(payload, binary, len(direct.session.channels))
                    if frame is not None:
                        frames.append(frame)
                    elif restart == AGAIN:
                        pending.appendleft((payload, binary))  # the first frame of the next session
                events = await direct.feed(frames) if frames else []
            self.report(direct, events)
            if restart != GO_ON and not direct.closed:
                await direct.close(1000, RESTART_REASON)

    async def _session(self) -> DirectSession:
        direct = self.direct
        if direct is not None and not direct.closed:
            return direct
        direct = self.direct = DirectSession(
            self.context.services, Peer("mqtt", self.device_id), self.context.idle_close_s, on_end=self._ended
        )
        hello = self.hello or Hello(self.device_id, None, None)
        async with direct.lock:
            events = await direct.feed([Incoming(0, "json", lambda _channels: hello)])
        self._recent.clear()
        self._seen.clear()
        self._last_t0 = None
        self._publish(events)
        return direct

    def _ended(self, direct: DirectSession) -> None:
        if self.direct is direct:
            self.direct = None  # the device (and its hello) stays known: the next frame opens a session

    # --- frames -----------------------------------------------------------------------------------

    def incoming(self, payload: bytes, binary: bool, channels: int) -> tuple[Incoming | None, int]:
        """(the frame for the session, or None when it is handled here: too big, a hello, a
        duplicate; whether the session must end first: a new hello, or a restarted clock)."""
        size, kind = len(payload), "binary" if binary else "json"
        limit = self.context.max_frame_bytes
        if size > limit:  # refused in the session's order of events, not closed as a WebSocket is (1009)
            return _failing(0, kind, FrameError("too_big", f"payload of {size} bytes; the limit is {limit}")), GO_ON
        try:
            frame = (
                parse_binary(payload, channels, self.context.max_samples)
                if binary
                else parse_text(payload, channels, self.context.max_samples)
            )
        except FrameTooBig as err:
            return _failing(0, kind, FrameError("too_big", str(err))), GO_ON
        except UnicodeDecodeError:
            return _failing(size, kind, FrameError("bad_json", "a JSON payload must be UTF-8 text")), GO_ON
        except FrameError as err:
            return _failing(size, kind, err), GO_ON
        if isinstance(frame, Hello):
            return None, RESTART if self._take_hello(frame, end_session=False) else GO_ON
        if isinstance(frame, LabelChange):  # recording under another label, or stopped
            return Incoming(size, kind, lambda _channels: frame), GO_ON
        if self._clock_restarted(frame):
            return None, AGAIN
        if not self._is_new(frame):
            self.context.on_duplicate()
            return None, GO_ON
        return Incoming(size, kind, _decoded(frame)), GO_ON

    def _clock_restarted(self, frame: Samples) -> bool:
        last = self._last_t0
        return frame.t0 is not None and last is not None and frame.t0 < last - REBOOT_S

    def _is_new(self, frame: Samples) -> bool:
        """False for a frame fed already: the same ``t0`` and row count (a redelivery is the
        same message). Frames without ``t0`` (binary) cannot be told apart."""
        if frame.t0 is None:
            return True
        key = (frame.t0, len(frame.values))
        if key in self._seen:
            return False
        if len(self._recent) == self._recent.maxlen:
            self._seen.discard(self._recent[0])
        self._recent.append(key)
        self._seen.add(key)
        self._last_t0 = frame.t0
        return True

    # --- out ---------------------------------------------------------------------------------------

    def _publish(self, events: list[Event]) -> None:
        publish = self.context.publish
        for event in events:
            if isinstance(event, Prediction):
                publish(self.device_id, "prediction", orjson.dumps(message_of(event)))
            elif isinstance(event, Rejected):
                publish(self.device_id, "error", orjson.dumps(message_of(event)))
            elif isinstance(event, Ready):  # the session id, the model, the layout and limits in force
                publish(self.device_id, "ready", orjson.dumps(message_of(event)))
            elif isinstance(event, RecordingState):  # recording on or off, seconds per label, files written
                publish(self.device_id, "recording", orjson.dumps(message_of(event)))

    def report(self, direct: DirectSession, events: list[Event]) -> None:
        """Publish what feeding ``direct`` caused, and an error when that ended the session."""
        self._publish(events)
        code = direct.close_code
        if direct.closed and code not in QUIET_CLOSES:
            self._refuse("session_closed", f"the stream session ended ({code}); the next frame starts a new one")

    def _refuse(self, code: str, detail: str) -> None:
        self.context.publish(self.device_id, "error", orjson.dumps({"type": "error", "code": code, "detail": detail}))


def _decoded(frame: Samples) -> Callable[[int], Samples]:
    return lambda _channels: frame


def _failing(size: int, kind: str, err: FrameError) -> Incoming:
    """A frame whose decoding fails inside the session, so it is counted and answered in order
    with the others (``size`` 0 for an oversize one: refused, not the session's 1009)."""

    def decode(_channels: int) -> Samples:
        raise err

    return Incoming(size, kind, decode)
