"""A live stream's windows: the streaming form of resampling and windowing a recording.

``StreamingWindower`` = ``StreamResampler`` (features/streaming_resample.py) ->
``WindowCutter`` (features/streaming_windows.py) on a segment timeline. Rows arrive in
frames at a steady ``rate_hz``, in the spec's channel order, each frame with an optional
start time ``t0``: row i of a segment is at ``origin + i / rate_hz``. A ``t0`` within
``max_gap_s`` of the expected time is jitter (the timeline goes on); a jump forward past
it starts a new segment at ``t0``, as a gap splits a recording in ``resample_uniform``.
Windows start at ``origin + index / spec.rate_hz``, the times ``posture predict`` reports.

Over any cut into frames, and across ``state()``/``restore()``, the windows and start
times are those of ``resample_uniform`` + ``sliding_windows`` over the whole stream
(tests/features/test_streaming.py, a property test; gaps count from one sample period past
the last row, so a gap is seen when it exceeds ``max_gap_s`` there plus one period).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.errors import DataError
from features.spec import WindowSpec
from features.streaming_resample import StreamResampler
from features.streaming_windows import WindowCutter, read_only

NO_TIMES = read_only(np.empty(0, dtype=np.float64))


class BackInTime(DataError):
    """A frame's ``t0`` lies more than ``max_gap_s`` before the time the stream expects."""


class StreamingWindower:
    """Frames of rows at ``rate_hz`` (the spec's channels) -> the spec's windows and their start times."""

    def __init__(self, spec: WindowSpec, rate_hz: float, max_gap_s: float) -> None:
        self.spec, self.rate_hz, self.max_gap_s = spec, rate_hz, max_gap_s
        self._start_segment(0.0)

    def _start_segment(self, origin: float) -> None:
        self.origin = origin
        self._n_in = 0
        self._resampler = StreamResampler(self.rate_hz, self.spec.rate_hz)
        self._cutter = WindowCutter(self.spec.window_samples, self.spec.hop_samples, len(self.spec.channels))

    @property
    def next_t(self) -> float:
        """The time of the next row this stream expects."""
        return self.origin + self._n_in / self.rate_hz

    def grid_samples(self, rows: int) -> int:
        """How many samples a frame of ``rows`` rows makes on the spec's grid."""
        return self._resampler.count(rows)

    def push(self, values: np.ndarray, t0: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(windows (m, window, channels) float32, start times in seconds) completed by this frame."""
        if t0 is not None and len(values):
            self.place(t0)
        return self.extend(values)

    def place(self, t0: float) -> None:
        """Anchor the segment at the first t0; a jump past ``max_gap_s`` starts a new one."""
        if self._n_in == 0:
            self.origin = t0
            return
        expected = self.next_t
        if t0 - expected > self.max_gap_s:
            self._start_segment(t0)
        elif expected - t0 > self.max_gap_s:
            raise BackInTime(f"t0 {t0:.3f} s goes back in time (expected about {expected:.3f} s)")

    def extend(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``push`` for rows that continue the stream at ``next_t``."""
        resampled = self._resampler.push(values)
        self._n_in += len(values)
        windows, starts = self._cutter.extend(resampled)
        if not len(windows):
            return windows, NO_TIMES
        return windows, self.origin + starts / self.spec.rate_hz

    def state(self) -> dict[str, Any]:
        """What a resumed stream needs to cut the same windows (at most one window of samples)."""
        return {
            "origin": self.origin,
            "n_in": self._n_in,
            "resampler": self._resampler.state(),
            "buffer": self._cutter.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue a stream from its ``state()`` (plain data: it may have been through JSON)."""
        self.origin, self._n_in = float(state["origin"]), int(state["n_in"])
        self._resampler.restore(state["resampler"])
        self._cutter.restore(state["buffer"])
