"""The stream session: decoded frames in, events out, whatever the transport.

A session turns samples into windows (``StreamWindower``), has them predicted by the
micro-batcher with whatever model is current, smooths with the model's forward filter,
hands one ``Prediction`` event per window to its outlet and logs every prediction and the
connection. A bad frame gets a ``Rejected`` event and the session goes on; oversize frames
(1009) and flooding (1008) end it (``SessionClosed``). After each completed window, and at
a close that is not the client's normal 1000, the state of a resumable session goes to the
session store (Redis when configured) so that a client that reconnects, here or to another
instance, can resume it.

``receive`` takes a frame all the way; ``cut`` and ``deliver`` are its two halves, for a
transport that has many sessions' windows predicted in one call (the MQTT lane).

It knows nothing of WebSocket, HTTP or JSON: adapters (``stream/websocket.py``,
``stream/direct.py`` for the Sensor Logger push and MQTT) decode the wire into ``Hello`` and
``Samples`` and turn events back into wire messages. What it needs from the server comes in
as ``SessionServices``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from features.errors import SpecError
from features.feature_sets import window_contexts
from features.spec import WindowSpec
from features.stream_context import StreamContext
from serving.batcher import BatcherClosed
from serving.logs import log_event
from serving.model_holder import ServedModel
from serving.store.records import ConnectionRecord
from serving.stream.buffer import StreamWindower
from serving.stream.events import Event, Prediction, Ready, Rejected, SessionClosed
from serving.stream.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TOO_BIG,
    FrameError,
    FrameTooBig,
    Hello,
    LabelChange,
    Samples,
)
from serving.stream.ids import random_id
from serving.stream.recording import StreamRecording, recorded_stream
from serving.stream.services import Peer, SessionServices
from serving.stream.snapshot import SessionSnapshot

Decoder = Callable[[int], Hello | Samples | LabelChange]  # the declared channel count -> the decoded frame


@dataclass(frozen=True, slots=True)
class Incoming:
    """A frame off the wire, decoded on demand (the layout in force sets how)."""

    size: int  # bytes on the wire, checked against max_frame_bytes
    kind: str  # "json" | "binary": the frames metric's label
    decode: Decoder


@dataclass(slots=True)  # not frozen: a frozen dataclass sets each field through object.__setattr__
class Cut:
    """A frame's completed windows, ready for the model: what ``StreamSession.cut`` gives and
    ``deliver`` takes back with their probabilities, predicted in between by whoever holds them
    (the micro-batcher for ``receive``; the MQTT bridge's lane batches many sessions' cuts)."""

    served: ServedModel  # the version this frame's windows go to
    windows: np.ndarray  # (n, window_samples, channels)
    contexts: np.ndarray  # (n, CONTEXT_COLUMNS): what the stream said of each window
    starts: np.ndarray  # (n,) seconds, on the session's timeline
    received: float  # perf_counter() when the frame was taken: latency is counted from there


class Outlet(Protocol):
    """Where a session's events go: a socket, an HTTP answer, MQTT publishes."""

    async def send(self, event: Event) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...


class StreamSession:
    def __init__(self, services: SessionServices, outlet: Outlet, peer: Peer, resumable: bool = True) -> None:
        self.services, self.outlet, self.peer = services, outlet, peer
        # Whether a client can resume the session, so its state is saved: not for transports
        # whose hello the server makes (MQTT, the Sensor Logger push), which name no session.
        self.resumable = resumable
        self.admission = services.admission(peer)
        self.id = random_id()  # replaced by the earlier session's id when a hello resumes one
        self.device_id: str | None = None
        self.opened_at = datetime.now(timezone.utc)
        self.frames = self.predictions = self.errors = 0
        self.close_code: int | None = None
        self._hello: Hello | None = None  # the layout in force, once the first frame set it
        self._windower: StreamWindower | None = None
        self._context = StreamContext()  # the wearer's upright and last posture, learned from this stream
        self._belief: np.ndarray | None = None  # the smoothing filter's state, in _belief_classes order
        self._belief_classes: tuple[str, ...] = ()
        self._recording: StreamRecording | None = None  # once a hello or label message asked to record
        # Looked up once: a labelled child costs a lock and a dict look-up, and every frame counts.
        self._frames_ok = {kind: services.metrics.frames.labels(kind, "ok") for kind in ("binary", "json")}

    # --- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        self.services.registry.add(self)
        self.services.metrics.sessions.inc()
        # The connections row is written at the first frame, once the id is final (a hello may resume).
        log_event("session_opened", session_id=self.id)

    async def run(self, inbox: AsyncIterator[Incoming]) -> None:
        """Serve frames until the inbox ends (the client left) or the session must close."""
        self.open()
        try:
            async for frame in inbox:
                await self.receive(frame)
        except SessionClosed as close:
            await self.close(close.code, close.reason)
        except Exception as err:  # a bug must cost one session, not the server
            log_event("session_failed", logging.ERROR, session_id=self.id, error=repr(err))
            await self.close(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            await self.finish()

    def disconnected(self, code: int | None) -> None:
        """The client went away with ``code`` (1005 when it gave none)."""
        if self.close_code is None:
            self.close_code = code or 1005

    async def close(self, code: int, reason: str = "") -> None:
        """End the session from this side, once; the outlet tells the client."""
        if self.close_code is not None:
            return
        self.close_code = code
        await self.outlet.close(code, reason)

    async def finish(self) -> None:
        """Leave the registry, save the state (a client's 1000 ends it), write the connections row."""
        services = self.services
        services.registry.discard(self)
        services.metrics.sessions.dec()
        services.metrics.session_closes.labels(str(self.close_code)).inc()
        await self.admission.forget()
        if self._recording is not None:  # written before anything else can fail
            await self._recording.close()
        try:
            if self.resumable and self._windower is not None:  # a client's 1000 ends it; anything else may resume
                await self._save_state(drop=self.close_code == 1000, live=False)
        finally:
            self._record(closed=True)  # the connections row is written whatever the state store did
        log_event(
            "session_closed",
            session_id=self.id,
            close_code=self.close_code,
            frames=self.frames,
            predictions=self.predictions,
            errors=self.errors,
            duration_s=round((datetime.now(timezone.utc) - self.opened_at).total_seconds(), 3),
        )

    # --- frames ----------------------------------------------------------------------------

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels a samples frame carries: the hello's, else the model's."""
        return self._windower.channels if self._windower else self.services.models.current.spec.channels

    async def receive(self, frame: Incoming) -> None:
        """Handle one frame; raises ``SessionClosed`` when the session must end."""
        cut = await self.cut(frame)
        if cut is None:
            return
        try:
            probabilities = await self.services.predictor.submit(cut.windows, cut.contexts, cut.served)
        except BatcherClosed:
            raise SessionClosed(CLOSE_GOING_AWAY, "server shutting down") from None
        await self.deliver(cut, probabilities)

    async def cut(self, frame: Incoming) -> Cut | None:
        """``receive`` up to the model: the windows the frame completed, for the caller to have
        predicted and ``deliver``ed (None when it completed none); raises ``SessionClosed``."""
        received = time.perf_counter()
        limit = self.services.max_frame_bytes
        if frame.size > limit:
            raise SessionClosed(CLOSE_TOO_BIG, f"frame of {frame.size} bytes; the limit is {limit}")
        if not await self.admission.allow():
            raise SessionClosed(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
        self.frames += 1
        try:
            cut = await self._handle(frame.decode(len(self.channels)), received)
        except FrameTooBig as err:
            raise SessionClosed(CLOSE_TOO_BIG, str(err)) from None
        except FrameError as err:
            self.errors += 1
            self.services.metrics.frames.labels(frame.kind, "error").inc()
            log_event("frame_rejected", logging.WARNING, session_id=self.id, code=err.code, detail=err.detail)
            await self.outlet.send(Rejected(err.code, err.detail))
            return None
        self._frames_ok[frame.kind].inc()
        return cut

    async def deliver(self, cut: Cut, probabilities: np.ndarray) -> None:
        """Log, smooth and send the predictions (n_windows, n_classes) of ``cut``'s windows."""
        latency_ms = (time.perf_counter() - cut.received) * 1000.0
        await self._emit(cut.served, cut.starts, probabilities, latency_ms)

    async def _handle(self, frame: Hello | Samples | LabelChange, received: float) -> Cut | None:
        if isinstance(frame, Hello):
            if self._hello is not None:
                raise FrameError("bad_hello", "hello must be the first message of a session")
            await self._configure(frame)
            return None
        if self._hello is None:
            await self._configure(Hello(None, None, None))  # no hello: the model's rate and channels
        if isinstance(frame, LabelChange):
            await self._relabel(frame)
            return None
        await self._charge_resampling(len(frame.values))
        return await self._cut_samples(frame, received)

    async def _charge_resampling(self, rows: int) -> None:
        """Rate limits count samples on the model's grid, not frames: a frame that up-sampling turns
        into more than max_samples_per_frame samples costs a token per max_samples_per_frame it
        makes (the first was taken when it arrived), so a low rate buys no extra work."""
        assert self._windower is not None
        extra = self.services.limits.tokens(self._windower.grid_samples(rows)) - 1
        if extra > 0 and not await self.admission.allow(extra):
            raise SessionClosed(CLOSE_POLICY_VIOLATION, "rate limit exceeded")

    async def _configure(self, hello: Hello) -> None:
        served = self.services.models.current
        resumed = self.resumable and hello.session_id is not None and await self._resume(hello)
        if not resumed:
            too_slow = self.services.limits.rate_problem(hello.rate_hz or served.spec.rate_hz, served.spec.rate_hz)
            if too_slow:
                raise FrameError("bad_hello", too_slow)
            try:
                self._windower = self._new_windower(served.spec, hello)
            except SpecError as err:
                raise FrameError("bad_hello", err.problem) from None
            self._hello, self.device_id = hello, hello.device_id
        assert self._windower is not None
        self._record(closed=False)
        windower = self._windower
        await self.outlet.send(
            Ready(
                self.id,
                served.describe(),
                windower.rate_hz,
                windower.channels,
                self.services.ready_limits,
                next_t=windower.next_t if resumed else None,
            )
        )
        if hello.record is not None:
            await self._record_from(hello.record, resumed)

    def _new_windower(self, spec: WindowSpec, hello: Hello) -> StreamWindower:
        return StreamWindower(
            spec,
            hello.channels or spec.channels,
            hello.rate_hz or spec.rate_hz,
            self.services.max_gap_s,
            self.services.limits.max_grid_samples,
        )

    async def _cut_samples(self, samples: Samples, received: float) -> Cut | None:
        served = self.services.models.current  # taken once: this frame's windows go to one version
        windower = self._windower_for(served)
        windows, starts = windower.push(samples.values, samples.t0)
        if self._recording is not None:  # the one branch recording costs a session that does not record
            await self._recording.add(samples.values, samples.t0)
        if len(windows) == 0:
            return None
        return Cut(served, windows, window_contexts(windows, served.spec, self._context), starts, received)

    def _windower_for(self, served: ServedModel) -> StreamWindower:
        """The session's windower, rebuilt when a reload brought a model with another windowing."""
        assert self._windower is not None and self._hello is not None
        if _same_windowing(self._windower.spec, served.spec):
            return self._windower
        try:
            self._windower = self._new_windower(served.spec, self._hello)
        except SpecError as err:
            raise SessionClosed(
                CLOSE_INTERNAL_ERROR, f"the new model version cannot use this stream: {err.problem}"
            ) from None
        log_event("session_rewindowed", session_id=self.id, version=served.version)
        return self._windower

    async def _emit(
        self, served: ServedModel, starts: np.ndarray, probabilities: np.ndarray, latency_ms: float
    ) -> None:
        """Log first (nothing is lost if the client is gone), then one event per window."""
        # Plain lists from here on: a window is a handful of numbers, and numpy's per-call
        # overhead on one row costs more than the arithmetic (this runs for every window).
        rows, begins = probabilities.tolist(), starts.tolist()
        labels = self.services.predictions.log(
            served,
            self.peer.source,
            self.id,
            self.device_id,
            begins,
            rows,
            probabilities.argmax(axis=1).tolist(),
            latency_ms,
        )
        self.predictions += len(labels)
        classes, window_s = served.classes, served.spec.window_s
        for row, start in zip(rows, begins):
            await self.outlet.send(
                Prediction(
                    self.id,
                    start,
                    start + window_s,
                    classes,
                    row,
                    self._smooth(served, row),
                    served.version,
                    latency_ms,
                )
            )
        # Saved after sending: a crash in between repeats a window on resume rather than losing it.
        if self.resumable:
            await self._save_state()

    def _smooth(self, served: ServedModel, row: list[float]) -> list[float]:
        """The served model's forward filter one window on: for this window, what
        ``predict --smooth`` gives over the whole stream."""
        if served.classes != self._belief_classes:  # another model's classes: start over
            self._belief, self._belief_classes = None, served.classes
        self._belief = served.smoother.step(self._belief, np.asarray(row))
        return self._belief.tolist()

    # --- recording (serving/stream/recording.py) ------------------------------------------------

    async def _record_from(self, raw: object, resumed: bool = False) -> None:
        """Start recording as the hello's ``record`` or a label message asks (or say why not)."""
        assert self._windower is not None
        if self._recording is None:
            self._recording = StreamRecording(self.services.recorder, self.outlet.send, self.id)
        served, peer = self.services.models.current, self.peer
        stream = recorded_stream(self.id, self.device_id, peer, self._windower, served, resumed)
        await self._recording.start(raw, stream)
        if self._recording.recording is None:  # refused: frames take no recording branch
            self._recording = None

    async def _relabel(self, change: LabelChange) -> None:
        """A label message: start recording, go on under another label, or stop (label null)."""
        if self._recording is not None and self._recording.recording is not None:
            await self._recording.relabel(change.label, change.subject)
        elif change.label is None:
            raise FrameError("bad_label", "this session does not record; send a label and a subject to start")
        else:
            await self._record_from({"label": change.label, "subject": change.subject})

    # --- the store and resume --------------------------------------------------------------

    def _record(self, closed: bool) -> None:
        self.services.connections.add_connection(
            ConnectionRecord(
                session_id=self.id,
                device_id=self.device_id,
                client_address=self.peer.address,
                opened_at=self.opened_at,
                closed_at=datetime.now(timezone.utc) if closed else None,
                frames=self.frames,
                predictions=self.predictions,
                errors=self.errors,
                close_code=self.close_code if closed else None,
            )
        )

    def _snapshot_bytes(self) -> bytes:
        assert self._windower is not None
        windower = self._windower
        return SessionSnapshot(
            session_id=self.id,
            device_id=self.device_id,
            rate_hz=windower.rate_hz,
            channels=list(windower.channels),
            opened_at=self.opened_at.isoformat(),
            frames=self.frames,
            predictions=self.predictions,
            errors=self.errors,
            spec=windower.spec.to_dict(),
            windower=windower.state(),
            belief=self._belief,
            belief_classes=list(self._belief_classes),
            context=self._context.state(),
        ).to_bytes()

    async def _resume(self, hello: Hello) -> bool:
        """Continue the session the hello names: its id, counters, timeline, buffer tail and smoothing."""
        assert hello.session_id is not None
        data = await self.services.states.claim(hello.session_id, self.admission.connection, self.peer.api_key)
        saved = SessionSnapshot.from_bytes(data) if data is not None else None
        if saved is None or not _layout_matches(saved, hello):
            reason = "unknown, expired or another key's" if saved is None else "the hello's layout differs"
            log_event("session_not_resumed", session_id=hello.session_id, reason=reason)
            return False
        windower = StreamWindower(
            WindowSpec.from_dict(saved.spec),
            saved.channels,
            saved.rate_hz,
            self.services.max_gap_s,
            self.services.limits.max_grid_samples,
        )
        windower.restore(saved.windower)  # a reload since then to another windowing: _windower_for rebuilds it
        self.id, self.device_id, self._windower = saved.session_id, saved.device_id, windower
        self._hello = Hello(saved.device_id, saved.rate_hz, tuple(saved.channels))
        self.opened_at = datetime.fromisoformat(saved.opened_at)
        self.frames += saved.frames
        self.predictions, self.errors = saved.predictions, saved.errors
        self._belief, self._belief_classes = saved.belief, tuple(saved.belief_classes)
        self._context = StreamContext.restore(saved.context) if saved.context else StreamContext()
        log_event("session_resumed", session_id=self.id, next_t=round(windower.next_t, 6))
        return True

    async def _save_state(self, drop: bool = False, live: bool = True) -> None:
        snapshot = None if drop else self._snapshot_bytes
        saved = await self.services.states.save(self.id, self.admission.connection, self.peer.api_key, snapshot, live)
        if not saved and not drop:
            # Resumed on another connection: this one is stale and must not write over it.
            log_event("session_taken_over", session_id=self.id)
            await self.close(CLOSE_POLICY_VIOLATION, "session resumed on another connection")


def _layout_matches(saved: SessionSnapshot, hello: Hello) -> bool:
    """A resuming hello may leave its fields out; the ones it gives must be the saved ones."""
    return (
        (hello.rate_hz is None or hello.rate_hz == saved.rate_hz)
        and (hello.channels is None or list(hello.channels) == saved.channels)
        and (hello.device_id is None or hello.device_id == saved.device_id)
    )


def _same_windowing(a: WindowSpec, b: WindowSpec) -> bool:
    return (a.rate_hz, a.window_samples, a.hop_samples, a.channels) == (
        b.rate_hz,
        b.window_samples,
        b.hop_samples,
        b.channels,
    )
