"""Causal smoothing of per-window class probabilities (``predict --smooth k`` and streams)."""

from __future__ import annotations

import numpy as np


def causal_mean_smoothing(probabilities: np.ndarray, k: int) -> np.ndarray:
    """Row i becomes the mean of rows max(0, i-k+1)..i of (n_windows, n_classes) ``probabilities``.

    Causal: a row never sees later windows, so a live stream gives the same answer as a
    file. ``k <= 1`` returns the input unchanged. Rows that sum to 1 still sum to 1.
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must be 2-D (n_windows, n_classes), got shape {probabilities.shape}")
    if k <= 1 or len(probabilities) == 0:
        return probabilities
    totals = np.cumsum(probabilities, axis=0, dtype=np.float64)
    sums = totals.copy()
    sums[k:] -= totals[:-k]
    counts = np.minimum(np.arange(1, len(probabilities) + 1), k)
    return sums / counts[:, None]
