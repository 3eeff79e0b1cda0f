"""The feature engine: windows of IMU samples -> one row of features per window.

``extract_features`` maps float windows (n_windows, n_samples, n_channels) to a float64
matrix (n_windows, n_features) whose columns are ``feature_names(channels, rate_hz)``.
It is vectorised over windows (in cache-sized blocks, see ``BLOCK_SAMPLES``); other
Python loops run only over a few signals and feature groups.

Signals: every given channel, plus the magnitude ``amag`` of (ax, ay, az) and ``gmag``
of (gx, gy, gz) when the whole triad is present. Per signal: time-domain statistics,
shape, jerk, spectrum and periodicity (see ``features.spectral``). Then cross-axis
correlations within each triad and the gravity direction (mean acceleration vector).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from features.contract import ACC_CHANNELS, GYRO_CHANNELS
from features.spectral import spectral_feature_names, spectral_features

FEATURE_SET_VERSION = "imu-stats-1"

MAGNITUDES: tuple[tuple[str, tuple[str, ...]], ...] = (("amag", ACC_CHANNELS), ("gmag", GYRO_CHANNELS))
STAT_NAMES = ("mean", "std", "min", "max", "rms", "p10", "p50", "p90", "iqr")
SHAPE_NAMES = ("skew", "kurtosis", "mcr")  # excess kurtosis; changes of (x > mean) per sample step
JERK_NAMES = ("jerk_mean", "jerk_std")  # of the first difference times the rate (units/s)
GRAVITY_NAMES = ("grav_x", "grav_y", "grav_z", "pitch", "roll", "tilt")  # unit vector; radians
# A signal whose variance is below (FLAT_TOLERANCE * (1 + |mean|))^2 counts as constant:
# its spread, shape, spectral and correlation features are exactly 0, never NaN.
FLAT_TOLERANCE = 1e-9
# Windows are processed in blocks of about this many samples (all signals), each block
# fully vectorised. Small working arrays (~0.4 MB) are reused by malloc and stay in
# cache; blocks of 1-4 MB cost ~30,000 page faults per 2,000 windows and run 2x slower.
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


def extract_features(windows: np.ndarray, channels: Sequence[str], rate_hz: float) -> np.ndarray:
    """Features of each window: (n_windows, n_samples, n_channels) -> (n_windows, n_features) float64.

    ``channels`` names the last axis (any order; acc/gyro are found by name). Columns
    follow ``feature_names(channels, rate_hz)``. Constant windows give finite values.
    """
    windows = np.asarray(windows)
    _check_channels(channels, rate_hz)
    if windows.ndim != 3 or windows.shape[2] != len(channels):
        raise ValueError(
            f"windows must be (n_windows, n_samples, {len(channels)}) for {list(channels)}, got {windows.shape}"
        )
    if windows.shape[1] < 2:
        raise ValueError(f"a window needs at least 2 samples, got {windows.shape[1]}")

    n_features = len(_names(tuple(channels), float(rate_hz)))
    out = np.empty((windows.shape[0], n_features))
    block = max(1, BLOCK_SAMPLES // (windows.shape[1] * len(_signal_names(channels))))
    for start in range(0, windows.shape[0], block):
        out[start : start + block] = _extract_block(windows[start : start + block], channels, rate_hz)
    return out


def _extract_block(windows: np.ndarray, channels: Sequence[str], rate_hz: float) -> np.ndarray:
    """``extract_features`` for one block of windows, all of them at once."""
    x = _signals(windows, channels)  # (n, n_signals, n_samples) float64, contiguous
    mean = x.mean(axis=-1)
    d = x - mean[..., None]
    var = np.einsum("...i,...i->...", d, d) / x.shape[-1]
    flat = var <= (FLAT_TOLERANCE * (1.0 + np.abs(mean))) ** 2
    std = np.where(flat, 0.0, np.sqrt(var))

    columns = _time_stats(x, mean, var, std)
    columns += _shape_stats(d, var, flat)
    columns += _jerk_stats(x, rate_hz)
    columns += spectral_features(d, flat, rate_hz)
    per_signal = np.stack(columns, axis=-1).reshape(len(x), -1)
    return np.concatenate([per_signal, *_cross_features(d, std, mean, channels)], axis=1)


def _check_channels(channels: Sequence[str], rate_hz: float) -> None:
    if isinstance(channels, str) or len(channels) == 0 or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be a non-empty sequence of distinct names, got {channels!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")


def _signals(windows: np.ndarray, channels: Sequence[str]) -> np.ndarray:
    """The channels plus triad magnitudes as one (n, n_signals, n_samples) float64 array."""
    n, samples, n_channels = windows.shape
    triads = _triads(channels)
    x = np.empty((n, n_channels + len(triads), samples))
    x[:, :n_channels] = windows.transpose(0, 2, 1)
    for k, (_, triad) in enumerate(triads):
        a, b, c = (x[:, list(channels).index(ch)] for ch in triad)
        x[:, n_channels + k] = np.sqrt(a * a + b * b + c * c)
    return x


def _percentiles(ordered: np.ndarray, qs: Sequence[float]) -> list[np.ndarray]:
    """Linear-interpolated percentiles (numpy's default method) of sorted rows."""
    last = ordered.shape[-1] - 1
    out = []
    for q in qs:
        position = q / 100.0 * last
        low = int(np.floor(position))
        high = min(low + 1, last)
        out.append(ordered[..., low] + (position - low) * (ordered[..., high] - ordered[..., low]))
    return out


def _time_stats(x: np.ndarray, mean: np.ndarray, var: np.ndarray, std: np.ndarray) -> list[np.ndarray]:
    """mean, std, min, max, rms, p10, p50, p90, iqr."""
    ordered = np.sort(x, axis=-1)
    p10, p25, p50, p75, p90 = _percentiles(ordered, (10, 25, 50, 75, 90))
    rms = np.sqrt(mean * mean + var)
    return [mean, std, ordered[..., 0], ordered[..., -1], rms, p10, p50, p90, p75 - p25]


def _shape_stats(d: np.ndarray, var: np.ndarray, flat: np.ndarray) -> list[np.ndarray]:
    """Skewness, excess kurtosis (both biased, as scipy.stats defaults) and mean-crossing rate."""
    d2 = d * d
    m3 = np.einsum("...i,...i->...", d2, d) / d.shape[-1]
    m4 = np.einsum("...i,...i->...", d2, d2) / d.shape[-1]
    safe_var = np.where(flat, 1.0, var)
    skew = np.where(flat, 0.0, m3 / safe_var**1.5)
    kurtosis = np.where(flat, 0.0, m4 / safe_var**2 - 3.0)
    above = d > 0
    crossings = np.count_nonzero(above[..., 1:] != above[..., :-1], axis=-1)
    mcr = np.where(flat, 0.0, crossings / (d.shape[-1] - 1))
    return [skew, kurtosis, mcr]


def _jerk_stats(x: np.ndarray, rate_hz: float) -> list[np.ndarray]:
    """Mean absolute and standard deviation of the first difference, in units per second."""
    jerk = np.diff(x, axis=-1) * rate_hz
    return [np.abs(jerk).mean(axis=-1), jerk.std(axis=-1)]


def _cross_features(d: np.ndarray, std: np.ndarray, mean: np.ndarray, channels: Sequence[str]) -> list[np.ndarray]:
    """Pearson correlations within each triad, then the gravity direction when acc is present."""
    index = {name: i for i, name in enumerate(channels)}
    blocks = []
    for _, triad in _triads(channels):
        cols = []
        for a, b in _pairs(triad):
            i, j = index[a], index[b]
            scale = std[:, i] * std[:, j]
            covariance = np.einsum("ij,ij->i", d[:, i], d[:, j]) / d.shape[-1]
            cols.append(np.where(scale > 0, covariance / np.where(scale > 0, scale, 1.0), 0.0))
        blocks.append(np.stack(cols, axis=1))
    if _has_acc(channels):
        blocks.append(_gravity(mean[:, [index[c] for c in ACC_CHANNELS]]))
    return blocks


def _gravity(acc_mean: np.ndarray) -> np.ndarray:
    """Unit gravity vector (mean acceleration, normalised) and pitch, roll, tilt in radians.

    pitch = atan2(-gx, hypot(gy, gz)), roll = atan2(gy, gz), tilt = angle between gravity
    and the device z axis. A zero mean vector gives all zeros.
    """
    norm = np.linalg.norm(acc_mean, axis=1, keepdims=True)
    unit = np.where(norm > 0, acc_mean / np.where(norm > 0, norm, 1.0), 0.0)
    ux, uy, uz = unit.T
    pitch = np.arctan2(-ux, np.hypot(uy, uz))
    roll = np.arctan2(uy, uz)
    tilt = np.where(norm[:, 0] > 0, np.arccos(np.clip(uz, -1.0, 1.0)), 0.0)
    return np.column_stack([unit, pitch, roll, tilt])
