"""A model version's rolling window of recent predictions: a preallocated ring buffer.

The micro-batcher appends each batch's tracked feature columns and probabilities with two
slice copies (no allocation, no per-window Python); the scorer takes a copy of what is
there. Order inside the ring does not matter: scores are histograms.
"""

from __future__ import annotations

import numpy as np


class DriftWindow:
    """The last ``size`` windows' tracked features (size, n_tracked) and probabilities (size, n_classes)."""

    def __init__(self, size: int, columns: np.ndarray, n_classes: int) -> None:
        self.size = size
        self.columns = columns  # the model's feature columns the profile tracks
        self._tracked = np.empty((size, len(columns)), dtype=np.float32)
        self._probabilities = np.empty((size, n_classes), dtype=np.float32)
        self._next = 0
        self.filled = 0
        self.appended = 0  # windows ever appended: the scorer's clock

    def append(self, features: np.ndarray, probabilities: np.ndarray) -> None:
        """Add one batch: ``features`` (n, n_features) as featurized, ``probabilities`` (n, n_classes)."""
        n = len(probabilities)
        self.appended += n
        if n >= self.size:  # only the newest ``size`` rows can stay
            features, probabilities, n = features[-self.size :], probabilities[-self.size :], self.size
        head = min(n, self.size - self._next)
        end = self._next + head
        self._tracked[self._next : end] = features[:head, self.columns]
        self._probabilities[self._next : end] = probabilities[:head]
        if head < n:  # wrap around
            self._tracked[: n - head] = features[head:, self.columns]
            self._probabilities[: n - head] = probabilities[head:]
        self._next = (self._next + n) % self.size
        self.filled = min(self.size, self.filled + n)

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the tracked features and probabilities held now."""
        return self._tracked[: self.filled].copy(), self._probabilities[: self.filled].copy()
