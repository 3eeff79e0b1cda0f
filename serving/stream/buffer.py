"""Per-session stream state: samples in (at the client's rate), windows out (the model's).

``StreamWindower`` = channel selection -> ``StreamResampler`` -> ``SampleBuffer``, with
the segment timeline: windows start at ``origin + index / rate`` like ``posture predict``
reports them, and a jump in ``t0`` larger than ``max_gap_s`` starts a new segment, as a
gap in a recording does. A frame that would make more than ``max_samples`` samples on
the model's grid is refused before any is made (serving/stream/work_limits.py says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from features.errors import SpecError
from features.spec import WindowSpec
from serving.stream.protocol import FrameError


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


_NO_STARTS = _read_only(np.empty(0, dtype=np.int64))
_NO_TIMES = _read_only(np.empty(0, dtype=np.float64))


class SampleBuffer:
    """Samples from the next window's start on; ``extend`` returns the windows completed."""

    def __init__(self, window: int, hop: int, n_channels: int) -> None:
        self.window, self.hop = window, hop
        self._data = np.empty((2 * window, n_channels), dtype=np.float32)
        self._length = 0
        self._offset = 0  # stream index of _data[0]
        # Most frames complete no window: they all get these (read-only) empty results.
        self._no_windows = _read_only(np.empty((0, window, n_channels), np.float32))

    def extend(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Append rows; return (windows (m, window, channels) float32, their first sample's index)."""
        needed = self._length + len(values)
        if needed > len(self._data):
            grown = np.empty((max(needed, 2 * len(self._data)), self._data.shape[1]), dtype=np.float32)
            grown[: self._length] = self._data[: self._length]
            self._data = grown
        self._data[self._length : needed] = values
        self._length = needed
        if needed < self.window:
            return self._no_windows, _NO_STARTS
        count = (needed - self.window) // self.hop + 1
        # Copied window by window: a frame completes one or two, and numpy's
        # sliding_window_view costs more in argument checks than these copies.
        windows = np.empty((count, self.window, self._data.shape[1]), dtype=np.float32)
        for k in range(count):
            windows[k] = self._data[k * self.hop : k * self.hop + self.window]
        starts = self._offset + self.hop * np.arange(count, dtype=np.int64)
        consumed = count * self.hop
        self._data[: needed - consumed] = self._data[consumed:needed]  # numpy buffers the overlap
        self._length -= consumed
        self._offset += consumed
        return windows, starts

    def state(self) -> dict[str, Any]:
        """The samples since the next window's start (fewer than one window) and their index."""
        return {"rows": self._data[: self._length].copy(), "offset": self._offset}

    def restore(self, state: dict[str, Any]) -> None:
        rows = np.asarray(state["rows"], dtype=np.float32).reshape(-1, self._data.shape[1])
        if len(rows) > len(self._data):
            self._data = np.empty((len(rows), self._data.shape[1]), dtype=np.float32)
        self._data[: len(rows)] = rows
        self._length, self._offset = len(rows), int(state["offset"])


class StreamResampler:
    """Linear interpolation of a stream at ``in_rate`` onto the grid k / ``out_rate``, chunk by chunk.

    Gives the samples ``features.resample.resample_uniform`` gives for the whole stream
    at once; identity when the rates are equal.
    """

    def __init__(self, in_rate: float, out_rate: float) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._previous: np.ndarray | None = None  # last input row
        self._n_in = 0
        self._next_out = 0

    def count(self, rows: int) -> int:
        """How many samples ``push`` of ``rows`` rows returns, without making them."""
        if self.in_rate == self.out_rate or rows == 0:
            return rows
        return max(0, self._last_out(rows) + 1 - self._next_out)

    def _last_out(self, rows: int) -> int:
        """The grid index of the last output sample once ``rows`` more rows are in."""
        return int(np.floor((self._n_in + rows - 1) / self.in_rate * self.out_rate + 1e-9))

    def push(self, values: np.ndarray) -> np.ndarray:
        if self.in_rate == self.out_rate or len(values) == 0:
            return values
        first = self._n_in - (self._previous is not None)
        x = values if self._previous is None else np.vstack([self._previous, values])
        t_in = np.arange(first, first + len(x)) / self.in_rate
        last = self._last_out(len(values))
        t_out = np.arange(self._next_out, last + 1) / self.out_rate
        out = np.empty((len(t_out), x.shape[1]), dtype=np.float32)
        for channel in range(x.shape[1]):
            out[:, channel] = np.interp(t_out, t_in, x[:, channel])
        self._previous = values[-1:].copy()
        self._n_in += len(values)
        self._next_out = last + 1
        return out

    def state(self) -> dict[str, Any]:
        return {"previous": self._previous, "n_in": self._n_in, "next_out": self._next_out}

    def restore(self, state: dict[str, Any]) -> None:
        previous = state["previous"]
        self._previous = None if previous is None else np.asarray(previous, dtype=np.float32)
        self._n_in, self._next_out = int(state["n_in"]), int(state["next_out"])


class StreamWindower:
    """Frames in the client's channel order and rate -> the model's windows and start times."""

    def __init__(
        self,
        spec: WindowSpec,
        channels: Sequence[str],
        rate_hz: float,
        max_gap_s: float,
        max_samples: int | None = None,
    ) -> None:
        missing = [c for c in spec.channels if c not in channels]
        if missing:
            raise SpecError(f"the model needs channel(s) {', '.join(missing)} that the stream does not send.")
        self.spec, self.channels, self.rate_hz, self.max_gap_s = spec, tuple(channels), rate_hz, max_gap_s
        self.max_samples = max_samples  # per frame, on the model's grid; None: unbounded
        columns = [list(channels).index(c) for c in spec.channels]
        self._columns = None if columns == list(range(len(channels))) else columns  # None: already the model's order
        self._replay_until: float | None = None  # after a resume: rows before this time are duplicates
        self._start_segment(0.0)

    def _start_segment(self, origin: float) -> None:
        self.origin = origin
        self._n_in = 0
        self._resampler = StreamResampler(self.rate_hz, self.spec.rate_hz)
        self._buffer = SampleBuffer(self.spec.window_samples, self.spec.hop_samples, len(self.spec.channels))

    @property
    def next_t(self) -> float:
        """The time of the next sample this stream expects, on the session's timeline."""
        return self.origin + self._n_in / self.rate_hz

    def state(self) -> dict[str, Any]:
        """What a resumed session needs to cut the same windows (at most one window of samples)."""
        return {
            "origin": self.origin,
            "n_in": self._n_in,
            "resampler": self._resampler.state(),
            "buffer": self._buffer.state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue a saved stream. A client may send again what it was unsure had arrived:
        until a frame reaches past ``next_t``, rows before it are dropped (by their ``t0``)."""
        self.origin, self._n_in = float(state["origin"]), int(state["n_in"])
        self._resampler.restore(state["resampler"])
        self._buffer.restore(state["buffer"])
        self._replay_until = self.next_t

    def push(self, values: np.ndarray, t0: float | None) -> tuple[np.ndarray, np.ndarray]:
        """(windows (m, window, channels), start times in seconds) completed by this frame."""
        if self._replay_until is not None:
            values, t0 = self._skip_replayed(values, t0)
        if t0 is not None and len(values):
            self._place(t0)
        self._check_work(len(values))
        resampled = self._resampler.push(values if self._columns is None else values[:, self._columns])
        self._n_in += len(values)
        windows, starts = self._buffer.extend(resampled)
        if not len(windows):
            return windows, _NO_TIMES
        return windows, self.origin + starts / self.spec.rate_hz

    def grid_samples(self, rows: int) -> int:
        """How many samples a frame of ``rows`` rows makes on the model's grid."""
        return self._resampler.count(rows)

    def _check_work(self, rows: int) -> None:
        """Refuse a frame that would make more than ``max_samples`` samples. Under the session's
        rate floor only a reload to a faster model, or a session resumed from before, gets here."""
        if self.max_samples is None:
            return
        made = self.grid_samples(rows)
        if made > self.max_samples:
            raise FrameError(
                "too_many_samples",
                f"{rows} rows at {self.rate_hz:g} Hz make {made} samples on the "
                f"model's {self.spec.rate_hz:g} Hz grid; the limit is "
                f"{self.max_samples} a frame. Fix: send fewer rows per frame.",
            )

    def _skip_replayed(self, values: np.ndarray, t0: float | None) -> tuple[np.ndarray, float | None]:
        """Drop the rows of a replayed frame that the resumed session already has."""
        if t0 is None:  # no times (binary frames): the client continues at next_t itself
            self._replay_until = None
            return values, t0
        assert self._replay_until is not None
        skip = max(0, round((self._replay_until - t0) * self.rate_hz))
        if skip < len(values):
            self._replay_until = None  # caught up: from here on, the usual timeline checks
        return values[skip:], t0 + skip / self.rate_hz

    def _place(self, t0: float) -> None:
        """Anchor the segment at the first t0; a jump past ``max_gap_s`` starts a new one."""
        if self._n_in == 0:
            self.origin = t0
            return
        expected = self.next_t
        if t0 - expected > self.max_gap_s:
            self._start_segment(t0)
        elif expected - t0 > self.max_gap_s:
            raise FrameError("bad_time", f"t0 {t0:.3f} s goes back in time (expected about {expected:.3f} s)")
