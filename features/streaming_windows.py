"""Cutting sliding windows from a stream, frame by frame.

``WindowCutter`` is the streaming form of ``features.windows.sliding_windows`` and
``window_starts``: over any cut of a stream into frames, its windows and start indices
are the ones those give for the whole stream (tests/features/test_streaming.py). It keeps
only the samples from the next window's start on (less than one window), and copies the
windows it returns: a frame completes one or two, and the whole-recording view would
pin every sample in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


NO_STARTS = read_only(np.empty(0, dtype=np.int64))


class WindowCutter:
    """Samples from the next window's start on; ``extend`` returns the windows completed."""

    def __init__(self, window: int, hop: int, n_channels: int) -> None:
        self.window, self.hop = window, hop
        self._data = np.empty((2 * window, n_channels), dtype=np.float32)
        self._length = 0
        self._offset = 0  # stream index of _data[0]
        # Most frames complete no window: they all get these (read-only) empty results.
        self._no_windows = read_only(np.empty((0, window, n_channels), np.float32))

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
            return self._no_windows, NO_STARTS
        count = (needed - self.window) // self.hop + 1
        # Copied window by window: numpy's sliding_window_view costs more in argument
        # checks than these copies.
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
