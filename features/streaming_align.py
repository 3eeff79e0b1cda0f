"""Two sensors read at their own irregular times (a phone's accelerometer and gyroscope) ->
rows of both on one uniform grid, batch by batch, as a live stream needs them.

Each batch extends per-sensor tracks; grid samples are emitted up to the latest time every
sensor has reached (later ones wait for the next batch, so a grid sample is never
extrapolated), each interpolated with ``features.resample``'s kernels on its grid. A sensor
that resumes more than ``max_gap_s`` after its last reading starts a new segment with its
own grid; a gap inside one batch is interpolated over (a phone's batch spans about a second).
A batch whose readings would make more than ``max_rows`` grid rows (sparse timestamps: two
readings 10,000 s apart make 500,001 rows at 50 Hz) is refused before any row is made.

With one sensor, and pauses between batches, the rows over any cut into batches are
``resample_uniform``'s over the whole stream (tests/features/test_streaming_align.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from features.resample import interpolate_linear, last_grid_index

Readings = tuple[np.ndarray, np.ndarray]  # times (n,) in s, values (n, axes)


class TooManyRows(ValueError):
    """A batch that would make more than ``max_rows`` grid rows; the aligner starts a new segment."""

    def __init__(self, rows: int, max_rows: int) -> None:
        super().__init__(f"{rows} rows on the grid; the limit is {max_rows}")
        self.rows = rows


class SensorTrack:
    """One sensor's readings from just before the next grid time on."""

    def __init__(self, axes: int = 3) -> None:
        self.t = np.empty(0)
        self.v = np.empty((0, axes))

    def add(self, t: np.ndarray, v: np.ndarray) -> None:
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        floor = self.t[-1] if len(self.t) else -np.inf
        keep = (t > floor) & np.concatenate(([True], np.diff(t) > 0))
        self.t = np.concatenate((self.t, t[keep]))
        self.v = np.vstack((self.v, v[keep]))

    def at(self, times: np.ndarray) -> np.ndarray:
        return interpolate_linear(self.t, self.v, times)[0]

    def trim(self, before: float) -> None:
        """Forget readings no longer needed to interpolate at ``before`` or later."""
        first = max(0, int(np.searchsorted(self.t, before, side="right")) - 1)
        self.t, self.v = self.t[first:], self.v[first:]

    def clear(self) -> None:
        self.t, self.v = self.t[:0], self.v[:0]


class ImuAligner:
    """Batches of readings per sensor -> (t0, rows) on a ``rate_hz`` grid, sensors side by side."""

    def __init__(self, rate_hz: float, n_sensors: int, max_gap_s: float = 0.5, max_rows: int | None = None) -> None:
        self.rate_hz, self.max_gap_s, self.max_rows = rate_hz, max_gap_s, max_rows  # max_rows None: unbounded
        self.tracks = [SensorTrack() for _ in range(n_sensors)]
        self._origin: float | None = None  # time of grid sample 0 of the current segment
        self._next = 0  # the next grid sample to emit

    def push(self, batches: Sequence[Readings]) -> tuple[float, np.ndarray] | None:
        """Add one batch per sensor (either may be empty); the grid rows now complete, if any."""
        if self._origin is not None and self._paused(batches):
            self._new_segment()
        for track, (t, v) in zip(self.tracks, batches):
            if len(t):
                track.add(np.asarray(t, dtype=float), np.asarray(v, dtype=float))
        if any(len(track.t) == 0 for track in self.tracks):
            return None
        if self._origin is None:
            self._origin, self._next = max(float(track.t[0]) for track in self.tracks), 0
        until = min(float(track.t[-1]) for track in self.tracks)
        last = last_grid_index(until - self._origin, self.rate_hz)
        if last < self._next:
            return None
        if self.max_rows is not None and last + 1 - self._next > self.max_rows:
            self._new_segment()  # drop this batch's readings: the next batch starts afresh
            raise TooManyRows(last + 1 - self._next, self.max_rows)
        times = self._origin + np.arange(self._next, last + 1) / self.rate_hz
        rows = np.hstack([track.at(times) for track in self.tracks]).astype(np.float32)
        self._next = last + 1
        for track in self.tracks:
            track.trim(self._origin + self._next / self.rate_hz)
        return float(times[0]), rows

    def _new_segment(self) -> None:
        self._origin = None
        for track in self.tracks:
            track.clear()

    def _paused(self, batches: Sequence[Readings]) -> bool:
        """A sensor resumes more than ``max_gap_s`` after its last reading: a new segment."""
        return any(
            len(t) and len(track.t) and float(np.min(t)) - float(track.t[-1]) > self.max_gap_s
            for track, (t, _) in zip(self.tracks, batches)
        )
