"""A recorded session's samples on the model's grid, with their times.

The same resampling as the session's windows (``features.streaming_resample``), over every
channel the client sends (the dataset may hold more channels than the model uses), on the
same timeline rules: a frame's ``t0`` within ``max_gap_s`` of the expected time is jitter, a
jump forward past it starts a new segment (whose grid starts at that ``t0``; retrain splits
recordings at such gaps). A recording that starts on a resumed session skips the rows the
client sends again, as the session's windower does.
"""

from __future__ import annotations

import numpy as np

from features.streaming_resample import StreamResampler


class RecordingTimeline:
    """Frames at ``in_rate`` -> (times in seconds, samples) on the grid of ``out_rate``."""

    def __init__(
        self, in_rate: float, out_rate: float, max_gap_s: float, origin: float = 0.0, replaying: bool = False
    ) -> None:
        self.in_rate, self.out_rate, self.max_gap_s = in_rate, out_rate, max_gap_s
        self._segment(origin)  # frames without t0 go on from the session's time
        self._started = replaying  # else the first t0 anchors the grid
        self._replay_until = origin if replaying else None  # rows before it: the resumed session's, seen

    def _segment(self, origin: float) -> None:
        self.origin, self._n_in, self._n_out = origin, 0, 0
        self._resampler = StreamResampler(self.in_rate, self.out_rate)

    @property
    def next_t(self) -> float:
        return self.origin + self._n_in / self.in_rate

    def push(self, values: np.ndarray, t0: float | None) -> tuple[float, np.ndarray]:
        """(the time of the first, samples (n, channels) float32 at 1 / out_rate apart) that this
        frame completes. The times are made when a part is written (``times``), not per frame."""
        if t0 is not None and len(values):
            values, t0 = self._place(values, t0)
        elif t0 is None:
            self._replay_until = None  # no times (binary frames): the client continues at next_t itself
        self._started = self._started or len(values) > 0
        out = self._resampler.push(values)
        self._n_in += len(values)
        first = self.origin + self._n_out / self.out_rate
        self._n_out += len(out)
        return first, out

    def times(self, firsts: list[float], counts: list[int]) -> np.ndarray:
        """The times of pushed runs of samples: each run's first time, then 1 / out_rate apart."""
        return np.concatenate([first + np.arange(n) / self.out_rate for first, n in zip(firsts, counts)])

    def _place(self, values: np.ndarray, t0: float) -> tuple[np.ndarray, float]:
        if not self._started:
            self._segment(t0)
            return values, t0
        if self._replay_until is not None:
            skip = max(0, round((self._replay_until - t0) * self.in_rate))
            if skip >= len(values):
                return values[:0], t0
            self._replay_until = None  # caught up
            values, t0 = values[skip:], t0 + skip / self.in_rate
        if t0 - self.next_t > self.max_gap_s:
            self._segment(t0)
        return values, t0
