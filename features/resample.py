"""Resampling an irregularly sampled recording onto a fixed-rate grid, split at gaps.

``last_grid_index`` and ``interpolate_linear`` are the two kernels the streaming forms
(``features.streaming_resample``, ``features.streaming_align``) share with ``resample_uniform``.
"""

from __future__ import annotations

import math

import numpy as np

Segment = tuple[np.ndarray, np.ndarray, np.ndarray]  # (new_t, new_values, source index of previous sample)


def split_at_gaps(t: np.ndarray, max_gap_s: float) -> list[slice]:
    """Slices of ``t`` between gaps longer than ``max_gap_s`` seconds."""
    breaks = np.flatnonzero(np.diff(t) > max_gap_s) + 1
    bounds = np.concatenate(([0], breaks, [t.size]))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def resample_uniform(t: np.ndarray, values: np.ndarray, rate_hz: float, max_gap_s: float) -> list[Segment]:
    """Linearly interpolate ``values`` (n, channels) sampled at ``t`` onto a ``rate_hz`` grid.

    Gaps longer than ``max_gap_s`` are not interpolated over: each stretch between them
    becomes its own segment with a grid starting at its first sample. For every new sample
    the index (into ``t``) of the last source sample at or before it is returned too, so
    callers can carry labels by nearest-previous sample.
    """
    t = np.asarray(t, dtype=float)
    values = np.asarray(values, dtype=float)
    if t.ndim != 1 or values.ndim != 2 or values.shape[0] != t.size:
        raise ValueError(f"t must be (n,) and values (n, channels); got {t.shape} and {values.shape}")
    if rate_hz <= 0 or max_gap_s <= 0:
        raise ValueError(f"rate_hz and max_gap_s must be positive; got {rate_hz} and {max_gap_s}")
    if not np.all(np.diff(t) > 0):
        raise ValueError("t must be strictly increasing")
    if t.size == 0:
        return []
    return [_resample_segment(t[s], values[s], rate_hz, s.start) for s in split_at_gaps(t, max_gap_s)]


def last_grid_index(span_s: float, rate_hz: float) -> int:
    """The last k with k / ``rate_hz`` at or before ``span_s``; a sample that rounding puts a
    hair before a grid point still reaches it."""
    return math.floor(span_s * rate_hz + 1e-9)


def interpolate_linear(t: np.ndarray, values: np.ndarray, new_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (n, channels) sampled at increasing ``t``, linearly at ``new_t`` (within
    [t[0], t[-1]]); and for each new time the index of the last sample at or before it.

    All channels in one expression: one ``np.interp`` a channel costs more, on a recording
    and on a live frame's few rows alike (np.clip too: its argument checks cost more than
    the two ufuncs that replace it on a frame).
    """
    previous = t.searchsorted(new_t, "right") - 1
    if t.size == 1:
        return np.repeat(values, new_t.size, axis=0), previous
    left = np.minimum(np.maximum(previous, 0), t.size - 2)  # the last grid point may sit exactly on t[-1]
    right = left + 1
    t_left, v_left = t[left], values[left]
    fraction = (new_t - t_left) / (t[right] - t_left)
    return v_left + fraction[:, None] * (values[right] - v_left), previous


def _resample_segment(t: np.ndarray, values: np.ndarray, rate_hz: float, offset: int) -> Segment:
    """One gap-free stretch: grid t[0] + k / rate_hz up to t[-1], interpolated in one pass."""
    new_t = t[0] + np.arange(last_grid_index(t[-1] - t[0], rate_hz) + 1) / rate_hz
    new_values, previous = interpolate_linear(t, values, new_t)
    return new_t, new_values, previous + offset
