"""WebSocket /v1/stream: one ``StreamSession`` per connection (protocol in docs/protocol.md).

A session turns frames into windows (``StreamWindower``), has them predicted by the
micro-batcher with whatever model is current, smooths with the model's forward filter, answers
each window with a prediction message and logs every prediction and the connection to
the store. A bad frame gets an error message and the session goes on; oversize frames
(1009) and flooding (1008) close it. After each completed window, and at a close that is
not the client's normal 1000, its state goes to the session store (Redis when configured)
so that a client that reconnects, here or to another instance, can resume it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from features.errors import SpecError
from features.feature_sets import window_contexts
from features.spec import WindowSpec
from features.stream_context import StreamContext
from serving.batcher import BatcherClosed
from serving.http.auth_middleware import API_KEY_SCOPE
from serving.logs import log_event
from serving.model_holder import ServedModel
from serving.store.prediction_store import ConnectionRecord, PredictionRecord
from serving.stream.buffer import StreamWindower
from serving.stream.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TOO_BIG,
    FrameError,
    FrameTooBig,
    Hello,
    Samples,
    error_message,
    parse_binary,
    parse_text,
    prediction_message,
    ready_message,
)
from serving.stream.state import SessionSnapshot
from serving.stream.work_limits import WorkLimits

if TYPE_CHECKING:
    from serving.runtime import Runtime

READY_LIMITS = ("max_frame_bytes", "max_samples_per_frame", "rate_limit_per_s")  # told to the client


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


async def stream_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    if runtime.draining:  # between the shutdown signal and the listener closing
        await websocket.close(CLOSE_GOING_AWAY, "server shutting down")
        return
    await StreamSession(websocket, runtime, websocket.scope.get(API_KEY_SCOPE)).run()


class StreamSession:
    def __init__(self, websocket: WebSocket, runtime: "Runtime", api_key: str | None = None) -> None:
        self.ws, self.rt = websocket, runtime
        self.id = uuid.uuid4().hex  # replaced by the earlier session's id when a hello resumes one
        self.connection = uuid.uuid4().hex  # this connection: the session state's owner, its own rate bucket
        self.api_key = api_key  # the caller's key name (None when keys are not required)
        self.address = websocket.client.host if websocket.client else None
        self.device_id: str | None = None
        self.opened_at = datetime.now(timezone.utc)
        self.frames = self.predictions = self.errors = 0
        self.close_code: int | None = None
        self._hello: Hello | None = None  # the layout in force, once the first frame set it
        self._windower: StreamWindower | None = None
        self._context = StreamContext()  # the wearer's upright and last posture, learned from this stream
        self._belief: np.ndarray | None = None  # the smoothing filter's state, in _belief_classes order
        self._belief_classes: tuple[str, ...] = ()
        self._limits = WorkLimits.of(runtime.settings)
        self._send_lock = asyncio.Lock()
        self._closing = False
        # Looked up once: a labelled child costs a lock and a dict look-up, and every frame counts.
        self._frames_ok = {kind: runtime.metrics.frames.labels(kind, "ok") for kind in ("binary", "json")}

    async def run(self) -> None:
        await self.ws.accept()
        self.rt.sessions.add(self)
        self.rt.metrics.sessions.inc()
        # The connections row is written at the first message, once the id is final (a hello may resume).
        log_event("session_opened", session_id=self.id)
        try:
            await self._receive_loop()
        except _Close as close:
            await self.close(close.code, close.reason)
        except Exception as err:  # a bug must cost one session, not the server
            log_event("session_failed", logging.ERROR, session_id=self.id, error=repr(err))
            await self.close(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            await self._finish()

    async def close(self, code: int, reason: str = "") -> None:
        """Send a close frame once; the receive loop ends when the client answers."""
        async with self._send_lock:
            if self._closing:
                return
            self._closing = True
            self.close_code = code
            try:
                await self.ws.close(code, reason[:120])
            except (RuntimeError, WebSocketDisconnect, OSError):
                pass  # already gone

    async def _receive_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                if self.close_code is None:
                    self.close_code = int(message.get("code") or 1005)
                return
            await self._on_frame(message.get("text"), message.get("bytes"))

    async def _on_frame(self, text: str | None, data: bytes | None) -> None:
        received = time.perf_counter()
        size = len(data) if data is not None else len(text.encode()) if text is not None else 0
        if size > self.rt.settings.max_frame_bytes:
            raise _Close(CLOSE_TOO_BIG, f"frame of {size} bytes; the limit is {self.rt.settings.max_frame_bytes}")
        if not await self._within_rate():
            raise _Close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
        self.frames += 1
        kind = "binary" if data is not None else "json"
        try:
            await self._handle(text, data, received)
        except FrameTooBig as err:
            raise _Close(CLOSE_TOO_BIG, str(err)) from None
        except FrameError as err:
            self.errors += 1
            self.rt.metrics.frames.labels(kind, "error").inc()
            log_event("frame_rejected", logging.WARNING, session_id=self.id, code=err.code, detail=err.detail)
            await self._send(error_message(err.code, err.detail))
            return
        self._frames_ok[kind].inc()

    async def _handle(self, text: str | None, data: bytes | None, received: float) -> None:
        limit = self.rt.settings.max_samples_per_frame
        n_channels = len(self._channels())
        parsed = (
            parse_binary(data, n_channels, limit) if data is not None else parse_text(text or "", n_channels, limit)
        )
        if isinstance(parsed, Hello):
            if self._hello is not None:
                raise FrameError("bad_hello", "hello must be the first message of a session")
            await self._configure(parsed)
            return
        if self._hello is None:
            await self._configure(Hello(None, None, None))  # no hello: the model's rate and channels
        await self._charge_resampling(len(parsed.values))
        await self._on_samples(parsed, received)

    async def _charge_resampling(self, rows: int) -> None:
        """Rate limits count samples on the model's grid, not frames: a frame that up-sampling turns
        into more than max_samples_per_frame samples costs a token per max_samples_per_frame it
        makes (the first was taken when it arrived), so a low rate buys no extra work."""
        assert self._windower is not None
        extra = self._limits.tokens(self._windower.grid_samples(rows)) - 1
        if extra > 0 and not await self._within_rate(extra):
            raise _Close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")

    async def _configure(self, hello: Hello) -> None:
        served = self.rt.holder.current
        resumed = hello.session_id is not None and await self._resume(hello)
        if not resumed:
            too_slow = self._limits.rate_problem(hello.rate_hz or served.spec.rate_hz, served.spec.rate_hz)
            if too_slow:
                raise FrameError("bad_hello", too_slow)
            try:
                self._windower = self._new_windower(served, hello)
            except SpecError as err:
                raise FrameError("bad_hello", err.problem) from None
            self._hello, self.device_id = hello, hello.device_id
        assert self._windower is not None
        self._record(closed=False)
        limits = {key: getattr(self.rt.settings, key) for key in READY_LIMITS}
        await self._send(
            ready_message(
                self.id,
                served.describe(),
                self._windower.rate_hz,
                self._windower.channels,
                limits,
                next_t=self._windower.next_t if resumed else None,
            )
        )

    def _new_windower(self, served: ServedModel, hello: Hello) -> StreamWindower:
        spec = served.spec
        return StreamWindower(
            spec,
            hello.channels or spec.channels,
            hello.rate_hz or spec.rate_hz,
            self.rt.settings.max_gap_s,
            self._limits.max_grid_samples,
        )

    def _channels(self) -> tuple[str, ...]:
        return self._windower.channels if self._windower else self.rt.holder.current.spec.channels

    async def _on_samples(self, samples: Samples, received: float) -> None:
        served = self.rt.holder.current  # taken once: this frame's windows go to one version
        windower = self._windower_for(served)
        windows, starts = windower.push(samples.values, samples.t0)
        if len(windows) == 0:
            return
        contexts = window_contexts(windows, served.spec, self._context)
        try:
            probabilities = await self.rt.batcher.submit(windows, contexts, served)
        except BatcherClosed:
            raise _Close(CLOSE_GOING_AWAY, "server shutting down") from None
        latency_ms = (time.perf_counter() - received) * 1000.0
        await self._emit(served, starts, probabilities, latency_ms)

    def _windower_for(self, served: ServedModel) -> StreamWindower:
        """The session's windower, rebuilt when a reload brought a model with another windowing."""
        assert self._windower is not None and self._hello is not None
        if _same_windowing(self._windower, served):
            return self._windower
        try:
            self._windower = self._new_windower(served, self._hello)
        except SpecError as err:
            raise _Close(CLOSE_INTERNAL_ERROR, f"the new model version cannot use this stream: {err.problem}") from None
        log_event("session_rewindowed", session_id=self.id, version=served.version)
        return self._windower

    async def _emit(
        self, served: ServedModel, starts: np.ndarray, probabilities: np.ndarray, latency_ms: float
    ) -> None:
        """Log first (nothing is lost if the client is gone), then send one message per window."""
        classes, window_s = served.classes, served.spec.window_s
        # Plain lists from here on: a window is a handful of numbers, and numpy's per-call
        # overhead on one row costs more than the arithmetic (this runs for every window).
        rows, best, begins = probabilities.tolist(), probabilities.argmax(axis=1).tolist(), starts.tolist()
        labels = [classes[k] for k in best]
        confidences = [row[k] for row, k in zip(rows, best)]
        now = datetime.now(timezone.utc)
        self.rt.store.add_predictions(
            [
                PredictionRecord(
                    time=now,
                    session_id=self.id,
                    device_id=self.device_id,
                    source="ws",
                    model_name=served.name,
                    model_version=served.version,
                    label=label,
                    confidence=confidence,
                    probabilities=dict(zip(classes, row)),
                    window_start=start,
                    window_end=start + window_s,
                    latency_ms=latency_ms,
                )
                for label, confidence, row, start in zip(labels, confidences, rows, begins)
            ]
        )
        self._count(served, labels, confidences, latency_ms)
        for row, start in zip(rows, begins):
            await self._send(
                prediction_message(
                    session_id=self.id,
                    window_start=start,
                    window_end=start + window_s,
                    classes=classes,
                    probabilities=row,
                    smoothed=self._smooth(served, row),
                    model_version=served.version,
                    latency_ms=latency_ms,
                )
            )
        # Saved after sending: a crash in between repeats a window on resume rather than losing it.
        await self._save_state()

    def _count(self, served: ServedModel, labels: list[str], confidences: list[float], latency_ms: float) -> None:
        self.predictions += len(labels)
        for label in labels:
            self.rt.metrics.predictions.labels(served.name, served.version, label, "ws").inc()
        self.rt.stats.add(served.name, served.version, labels, confidences, latency_ms)

    def _smooth(self, served: ServedModel, row: list[float]) -> list[float]:
        """The served model's forward filter one window on: for this window, what
        ``predict --smooth`` gives over the whole stream."""
        if served.classes != self._belief_classes:  # another model's classes: start over
            self._belief, self._belief_classes = None, served.classes
        self._belief = served.smoother.step(self._belief, np.asarray(row))
        return self._belief.tolist()

    async def _within_rate(self, cost: float = 1.0) -> bool:
        limiter, by_key = self.rt.edge.limiter, self.rt.edge.key_limiter
        if (
            await limiter.allow(f"session:{self.connection}", cost)
            and await limiter.allow(f"address:{self.address}", cost)
            and (self.api_key is None or await by_key.allow(f"key:{self.api_key}", cost))
        ):
            return True
        self.rt.metrics.rate_limited.labels("ws").inc()
        return False

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if self._closing:
                return
            try:
                await self.ws.send_text(orjson.dumps(message).decode())
            except (RuntimeError, WebSocketDisconnect, OSError):
                self._closing = True  # the client is gone; the receive loop sees the disconnect

    def _record(self, closed: bool) -> None:
        self.rt.store.add_connection(
            ConnectionRecord(
                session_id=self.id,
                device_id=self.device_id,
                client_address=self.address,
                opened_at=self.opened_at,
                closed_at=datetime.now(timezone.utc) if closed else None,
                frames=self.frames,
                predictions=self.predictions,
                errors=self.errors,
                close_code=self.close_code if closed else None,
            )
        )

    async def _finish(self) -> None:
        self.rt.sessions.discard(self)
        self.rt.metrics.sessions.dec()
        self.rt.metrics.session_closes.labels(str(self.close_code)).inc()
        await self.rt.edge.limiter.forget(f"session:{self.connection}")
        try:
            if self._windower is not None:  # a client's normal close ends the session; anything else may resume
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

    def _snapshot_bytes(self) -> bytes:
        return self._snapshot().to_bytes()

    def _snapshot(self) -> SessionSnapshot:
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
        )

    async def _resume(self, hello: Hello) -> bool:
        """Continue the session the hello names: its id, counters, timeline, buffer tail and smoothing."""
        assert hello.session_id is not None
        data = await self.rt.edge.session_store.claim(hello.session_id, self.connection, self.api_key)
        saved = SessionSnapshot.from_bytes(data) if data is not None else None
        if saved is None or not _layout_matches(saved, hello):
            reason = "unknown, expired or another key's" if saved is None else "the hello's layout differs"
            log_event("session_not_resumed", session_id=hello.session_id, reason=reason)
            return False
        windower = StreamWindower(
            WindowSpec.from_dict(saved.spec),
            saved.channels,
            saved.rate_hz,
            self.rt.settings.max_gap_s,
            self._limits.max_grid_samples,
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
        if (
            not await self.rt.edge.session_store.save(self.id, self.connection, self.api_key, snapshot, live)
            and not drop
        ):
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


def _same_windowing(windower: StreamWindower, served: ServedModel) -> bool:
    a, b = windower.spec, served.spec
    return (a.rate_hz, a.window_samples, a.hop_samples, a.channels) == (
        b.rate_hz,
        b.window_samples,
        b.hop_samples,
        b.channels,
    )
