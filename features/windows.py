"""Sliding windows over an evenly sampled recording, without copying."""

from __future__ import annotations

import numpy as np

from features.errors import SpecError
from features.spec import WindowSpec


def sliding_windows(samples: np.ndarray, window: int, hop: int) -> np.ndarray:
    """View ``samples`` (n_samples, n_channels) as (n_windows, window, n_channels).

    Windows start at 0, hop, 2*hop, ...; a tail shorter than one window is left out.
    The result is a read-only view, so windowing costs no memory.
    """
    samples = np.asarray(samples)
    if samples.ndim != 2:
        raise ValueError(f"samples must be 2-D (n_samples, n_channels), got shape {samples.shape}")
    if samples.shape[0] < window:
        return np.empty((0, window, samples.shape[1]), dtype=samples.dtype)
    view = np.lib.stride_tricks.sliding_window_view(samples, window, axis=0)  # (n-w+1, c, w)
    return view[::hop].transpose(0, 2, 1)


def window_starts(n_samples: int, window: int, hop: int) -> np.ndarray:
    """Index of the first sample of each window that ``sliding_windows`` yields."""
    if n_samples < window:
        return np.empty(0, dtype=np.int64)
    return np.arange(0, n_samples - window + 1, hop, dtype=np.int64)


def windows_for_spec(samples: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Windows of a recording already resampled to ``spec.rate_hz``; errors when too short."""
    if samples.shape[0] < spec.window_samples:
        raise SpecError(
            f"The recording has {samples.shape[0]} samples ({samples.shape[0] / spec.rate_hz:.2f} s) "
            f"but one window needs {spec.window_samples} ({spec.window_s} s).",
            f"record at least {spec.window_s} s.",
        )
    return sliding_windows(samples, spec.window_samples, spec.hop_samples)
