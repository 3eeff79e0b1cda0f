"""Rotated copies of the training windows (``features.augment``), featurized like the originals.

Copy k turns every recording by its own random rotation, drawn from ``seed`` in recording
order, so a run is reproducible. The copies' rows line up with the original windows, so a
fold's training rows select the same rows of every copy.
"""

from __future__ import annotations

import numpy as np

from features.augment import random_rotation, rotate_stream
from features.feature_sets import featurize
from features.spec import WindowSpec
from pipelines.windowing import WindowedDataset


def rotated_copies(windowed: WindowedDataset, spec: WindowSpec, copies: int, seed: int) -> list[np.ndarray]:
    """Features of ``copies`` rotated copies of every window, each (n_windows, n_features)."""
    rng = np.random.default_rng(seed)
    recordings = windowed.recordings.astype(str)
    names = np.unique(recordings)
    out = []
    for _ in range(copies):
        windows, contexts = np.empty_like(windowed.windows), np.empty_like(windowed.contexts)
        for name in names:
            rows = recordings == name
            windows[rows], contexts[rows] = rotate_stream(
                windowed.windows[rows], windowed.contexts[rows], spec.channels, random_rotation(rng)
            )
        out.append(featurize(windows, spec, contexts))
    return out


def with_copies(
    features: np.ndarray, labels: np.ndarray, copies: list[np.ndarray], rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Training matrix and labels: the given ``rows`` (all when None) of the features and of every copy."""
    index = slice(None) if rows is None else rows
    stacked = np.vstack([features[index], *(copy[index] for copy in copies)])
    return stacked, np.concatenate([labels[index]] * (1 + len(copies)))
