"""A stream session's recording, as the session's events (serving/recording does the work).

The session hands over the hello's ``record`` object, ``label`` messages and, while it
records, each frame's samples; this side turns what the recorder says into a ``recording``
event (on, off, a file written) or an error event. A refused request, or a disk that cannot
take a file, never ends the session: it goes on predicting.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from serving.logs import log_event
from serving.model_holder import ServedModel
from serving.recording.recorder import RecordedStream, Recorder, SessionRecording
from serving.recording.request import RecordRefused, check_allowed
from serving.stream.buffer import StreamWindower
from serving.stream.events import Event, RecordingState, Rejected
from serving.stream.services import Peer


def recorded_stream(
    session_id: str, device_id: str | None, peer: Peer, windower: StreamWindower, served: ServedModel, resumed: bool
) -> RecordedStream:
    """What the recorder needs to know of a session: who, its layout, the model, its time."""
    return RecordedStream(
        session_id=session_id,
        device_id=device_id,
        source=peer.source,
        scopes=peer.scopes,
        key_name=peer.api_key,
        rate_hz=windower.rate_hz,
        channels=windower.channels,
        model_rate_hz=served.spec.rate_hz,
        model_version=served.version,
        classes=served.classes,
        origin=windower.next_t,
        replaying=resumed,  # the client may send again rows the session has
    )


class StreamRecording:
    """Starts, relabels, feeds and ends one session's recording; says what happened."""

    def __init__(self, recorder: Recorder | None, send: Callable[[Event], Awaitable[None]], session_id: str) -> None:
        self.recorder, self.send, self.session_id = recorder, send, session_id
        self.recording: SessionRecording | None = None

    @property
    def active(self) -> bool:
        return self.recording is not None and self.recording.active

    async def start(self, raw: Any, stream: RecordedStream) -> None:
        """Record as ``raw`` (``{"label", "subject"}``) asks, or say why not."""
        try:
            if self.recorder is None:
                check_allowed(False, None, None)
            assert self.recorder is not None
            self.recording = self.recorder.start(raw, stream)
        except RecordRefused as err:
            await self._refused(err)
            return
        log_event("recording_started", session_id=self.session_id, label=self.recording.label)
        await self._state()

    async def relabel(self, label: Any, subject: Any) -> None:
        """Go on under ``label`` (None: stop); the part so far is written first."""
        assert self.recording is not None
        try:
            await self.recording.relabel(label, subject)
        except RecordRefused as err:
            await self._refused(err)
        await self._state()

    async def add(self, values: np.ndarray, t0: float | None) -> None:
        assert self.recording is not None
        if self.recording.add(values, t0):  # the part is full: write it
            await self.flush()

    async def flush(self) -> None:
        assert self.recording is not None
        try:
            await self.recording.flush()
        except RecordRefused as err:
            await self._refused(err)
        await self._state()

    async def close(self) -> None:
        """The session ends: write what is left (the client may be gone: nothing is sent)."""
        if self.recording is not None:
            await self.recording.close()

    async def _refused(self, err: RecordRefused) -> None:
        log_event("recording_refused", logging.WARNING, session_id=self.session_id, code=err.code, detail=err.detail)
        await self.send(Rejected(err.code, err.detail))

    async def _state(self) -> None:
        rec = self.recording
        if rec is not None:
            await self.send(RecordingState(rec.active, rec.label, rec.subject, dict(rec.seconds), rec.files))
