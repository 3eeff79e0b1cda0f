"""The feature engine: windows of IMU samples -> one row of features per window.

``extract_features`` maps float windows (n_windows, n_samples, n_channels) to a float64
matrix (n_windows, n_features) whose columns are ``feature_names(channels, rate_hz)``.
Per block of windows (see ``BLOCK_SAMPLES``) the compiled ``features.kernel`` prepares the
signals, numpy sorts them and takes their FFTs, and the kernel does the per-window arithmetic.

Signals: every given channel, plus the magnitude ``amag`` of (ax, ay, az) and ``gmag``
of (gx, gy, gz) when the whole triad is present. Per signal: time-domain statistics,
shape, jerk, spectrum and periodicity (see ``features.spectral``). Then cross-axis
correlations within each triad and the gravity direction (mean acceleration vector).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from features.contract import ACC_CHANNELS, GYRO_CHANNELS
from features.kernel import KernelLayout, fill_features, pairwise_plan, prepare_signals
from features.spectral import (
    autocorr_lag_range,
    band_of_bin,
    bands_for_rate,
    bin_frequencies,
    spectral_feature_names,
)

FEATURE_SET_VERSION = "imu-stats-1"

MAGNITUDES: tuple[tuple[str, tuple[str, ...]], ...] = (("amag", ACC_CHANNELS), ("gmag", GYRO_CHANNELS))
STAT_NAMES = ("mean", "std", "min", "max", "rms", "p10", "p50", "p90", "iqr")
SHAPE_NAMES = ("skew", "kurtosis", "mcr")  # excess kurtosis; changes of (x > mean) per sample step
JERK_NAMES = ("jerk_mean", "jerk_std")  # of the first difference times the rate (units/s)
GRAVITY_NAMES = ("grav_x", "grav_y", "grav_z", "pitch", "roll", "tilt")  # unit vector; radians
# Windows are processed in blocks of about this many samples (all signals), so that
# numpy's intermediates (signals, sorted copy, spectrum: ~0.2 MB each) stay in cache.
# Measured on 2,000 windows: 10x larger blocks cost the same, 100x larger ones 1.2x more.
BLOCK_SAMPLES = 25_600


def _triads(channels: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The (magnitude name, triad) pairs whose three channels are all present."""
    return [(name, triad) for name, triad in MAGNITUDES if all(c in channels for c in triad)]


def _has_acc(channels: Sequence[str]) -> bool:
    return all(c in channels for c in ACC_CHANNELS)


def _signal_names(channels: Sequence[str]) -> list[str]:
    return [*channels, *(name for name, _ in _triads(channels))]


def _per_signal_names(rate_hz: float) -> list[str]:
    return [*STAT_NAMES, *SHAPE_NAMES, *JERK_NAMES, *spectral_feature_names(rate_hz)]


def _pairs(triad: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(triad[i], triad[j]) for i in range(3) for j in range(i + 1, 3)]


def feature_names(channels: Sequence[str], rate_hz: float) -> list[str]:
    """Column names of ``extract_features(windows, channels, rate_hz)``, in order.

    ``<signal>_<feature>`` per signal, then ``corr_<a>_<b>`` per triad, then gravity.
    """
    return list(_names(tuple(channels), float(rate_hz)))


@lru_cache(maxsize=64)
def _names(channels: tuple[str, ...], rate_hz: float) -> tuple[str, ...]:
    # Cached: the server featurizes one small batch at a time and would rebuild them each call.
    _check_channels(channels, rate_hz)
    names = [f"{signal}_{feature}" for signal in _signal_names(channels) for feature in _per_signal_names(rate_hz)]
    for _, triad in _triads(channels):
        names += [f"corr_{a}_{b}" for a, b in _pairs(triad)]
    if _has_acc(channels):
        names += list(GRAVITY_NAMES)
    return tuple(names)


def extract_features(
    windows: np.ndarray, channels: Sequence[str], rate_hz: float, out: np.ndarray | None = None
) -> np.ndarray:
    """Features of each window: (n_windows, n_samples, n_channels) -> (n_windows, n_features) float64.

    ``channels`` names the last axis (any order; acc/gyro are found by name). Columns
    follow ``feature_names(channels, rate_hz)``. Constant windows give finite values.
    ``out``: a C-contiguous float64 (n_windows, n_features or more) matrix whose first columns
    they fill (the rest is the caller's), returned; a new one when None.
    """
    windows = np.asarray(windows)
    _check_channels(channels, rate_hz)
    if windows.ndim != 3 or windows.shape[2] != len(channels):
        raise ValueError(
            f"windows must be (n_windows, n_samples, {len(channels)}) for {list(channels)}, got {windows.shape}"
        )
    if windows.shape[1] < 2:
        raise ValueError(f"a window needs at least 2 samples, got {windows.shape[1]}")

    layout = _layout(tuple(channels), windows.shape[1], float(rate_hz))
    if out is None:
        out = np.empty((windows.shape[0], layout.n_features))
    elif out.shape[0] != windows.shape[0] or out.shape[1] < layout.n_features or not out.flags.c_contiguous:
        raise ValueError(f"out must be C-contiguous ({windows.shape[0]}, >= {layout.n_features}), got {out.shape}")
    if windows.dtype not in (np.float32, np.float64):  # one compiled kernel per float type only
        windows = windows.astype(np.float64)
    buffers = _block_buffers(layout, windows.shape[1])
    for start in range(0, windows.shape[0], layout.block):
        _extract_block(windows[start : start + layout.block], layout, buffers, out[start : start + layout.block])
    return out


@dataclass(frozen=True)
class _Layout:
    """Everything about a (channels, window length, rate) that does not depend on the data.

    Built once and cached: the server featurizes one small batch at a time, where
    rebuilding index lists and frequency tables would cost more than the arithmetic.
    """

    n_features: int
    n_signals: int
    block: int  # windows per block (``BLOCK_SAMPLES``)
    triad_columns: np.ndarray  # (n_triads, 3) channel indices of each complete triad
    pairwise_plan: np.ndarray  # how numpy sums a window's samples (features.kernel.pairwise_plan)
    kernel: KernelLayout


@lru_cache(maxsize=64)
def _layout(channels: tuple[str, ...], n_samples: int, rate_hz: float) -> _Layout:
    index = {name: i for i, name in enumerate(channels)}
    triads = _triads(channels)
    pairs = [(index[a], index[b]) for _, triad in triads for a, b in _pairs(triad)]
    positions = np.array([10, 25, 50, 75, 90]) / 100.0 * (n_samples - 1)
    low = np.floor(positions).astype(np.intp)
    freqs = bin_frequencies(n_samples, rate_hz)
    lag_low, lag_high = autocorr_lag_range(n_samples, rate_hz)
    kernel = KernelLayout(
        rate_hz=rate_hz,
        percentile_low=low,
        percentile_high=np.minimum(low + 1, n_samples - 1),
        percentile_weight=positions - low,
        freqs=freqs,
        band_of_bin=band_of_bin(freqs, rate_hz),
        n_bands=len(bands_for_rate(rate_hz)),
        entropy_norm=math.log(max(freqs.size, 2)),
        lag_low=lag_low,
        lag_high=lag_high,
        pair_left=np.array([i for i, _ in pairs], dtype=np.intp),
        pair_right=np.array([j for _, j in pairs], dtype=np.intp),
        acc_columns=np.array([index[c] for c in ACC_CHANNELS] if _has_acc(channels) else [], dtype=np.intp),
    )
    return _Layout(
        n_features=len(_names(channels, rate_hz)),
        n_signals=len(channels) + len(triads),
        block=max(1, BLOCK_SAMPLES // (n_samples * (len(channels) + len(triads)))),
        triad_columns=np.array([[index[c] for c in triad] for _, triad in triads], dtype=np.intp).reshape(-1, 3),
        pairwise_plan=pairwise_plan(n_samples),
        kernel=kernel,
    )


class _Buffers(NamedTuple):
    """One block's intermediates (see ``_extract_block``), ``block`` windows long."""

    x: np.ndarray  # (block, n_signals, n_samples) the signals
    ordered: np.ndarray  # each signal sorted
    mean: np.ndarray  # (block, n_signals)
    d: np.ndarray  # the signals demeaned


# Each thread's buffers by shape, reused from call to call: fresh arrays of this size (~0.2 MB)
# come from mmap, and the page faults of writing them cost the server more than the arithmetic
# (measured: ~54 against ~32 µs a window in batches of 16).
_scratch = threading.local()


def _block_buffers(layout: _Layout, n_samples: int) -> _Buffers:
    buffers: dict[tuple[int, int, int], _Buffers] = _scratch.__dict__.setdefault("buffers", {})
    shape = (layout.block, layout.n_signals, n_samples)
    if shape not in buffers:
        buffers[shape] = _Buffers(np.empty(shape), np.empty(shape), np.empty(shape[:2]), np.empty(shape))
    return buffers[shape]


def _extract_block(windows: np.ndarray, layout: _Layout, buffers: _Buffers, out: np.ndarray) -> None:
    """``extract_features`` for one block of windows, written into ``out``."""
    n = len(windows)
    x, ordered, mean, d = (buffer[:n] for buffer in buffers)
    prepare_signals(windows, layout.triad_columns, layout.pairwise_plan, x, mean, d)
    ordered[...] = x
    ordered.sort(axis=-1)
    fill_features(x, ordered, mean, d, np.fft.rfft(d, axis=-1), layout.kernel, out)


def _check_channels(channels: Sequence[str], rate_hz: float) -> None:
    if isinstance(channels, str) or len(channels) == 0 or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be a non-empty sequence of distinct names, got {channels!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
