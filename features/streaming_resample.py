"""Resampling a steady stream onto a model's grid, frame by frame.

``StreamResampler`` is the streaming form of ``features.resample.resample_uniform`` for
rows that arrive at a known steady rate: the same kernels (``last_grid_index``,
``interpolate_linear``) on the same grid, so frames of any size give the samples the
whole stream gives at once (tests/features/test_streaming.py holds it to that).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from features.resample import interpolate_linear, last_grid_index


class StreamResampler:
    """Linear interpolation of a stream at ``in_rate`` onto the grid k / ``out_rate``, chunk by chunk.

    Times are counted from the stream's first row (row i at i / ``in_rate``), so they stay
    exact however long the stream runs; identity when the rates are equal.
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
        return last_grid_index((self._n_in + rows - 1) / self.in_rate, self.out_rate)

    def push(self, values: np.ndarray) -> np.ndarray:
        """The grid samples (float32) that ``values`` (rows, channels) completes."""
        if self.in_rate == self.out_rate or len(values) == 0:
            return values
        first = self._n_in - (self._previous is not None)
        x = values if self._previous is None else np.concatenate((self._previous, values))
        t_in = np.arange(first, first + len(x)) / self.in_rate
        last = self._last_out(len(values))
        t_out = np.arange(self._next_out, last + 1) / self.out_rate
        out = interpolate_linear(t_in, x, t_out)[0].astype(np.float32)
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
