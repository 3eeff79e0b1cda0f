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
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from features.contract import ACC_CHANNELS, GYRO_CHANNELS
from features.spectral import SpectralLayout, spectral_feature_names, spectral_features, spectral_layout

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

    layout = _layout(tuple(channels), windows.shape[1], float(rate_hz))
    out = np.empty((windows.shape[0], layout.n_features))
    block = max(1, BLOCK_SAMPLES // (windows.shape[1] * layout.n_signals))
    for start in range(0, windows.shape[0], block):
        out[start : start + block] = _extract_block(windows[start : start + block], layout)
    return out


@dataclass(frozen=True)
class _Layout:
    """Everything about a (channels, window length, rate) that does not depend on the data.

    Built once and cached: the server featurizes one small batch at a time, where
    rebuilding index lists and frequency tables would cost more than the arithmetic.
    """

    channels: tuple[str, ...]
    rate_hz: float
    n_features: int
    n_signals: int
    triad_columns: np.ndarray  # (n_triads, 3) channel indices of each complete triad
    pair_left: np.ndarray  # signal indices of each correlated pair, all triads together
    pair_right: np.ndarray
    acc_columns: np.ndarray | None  # ax, ay, az indices when the accelerometer is complete
    percentile_low: np.ndarray  # sorted-sample indices and weights of p10, p25, p50, p75, p90
    percentile_high: np.ndarray
    percentile_weight: np.ndarray
    spectrum: SpectralLayout


@lru_cache(maxsize=64)
def _layout(channels: tuple[str, ...], n_samples: int, rate_hz: float) -> _Layout:
    index = {name: i for i, name in enumerate(channels)}
    triads = _triads(channels)
    triad_columns = np.array([[index[c] for c in triad] for _, triad in triads], dtype=np.intp).reshape(-1, 3)
    pairs = [(index[a], index[b]) for _, triad in triads for a, b in _pairs(triad)]
    positions = np.array([10, 25, 50, 75, 90]) / 100.0 * (n_samples - 1)
    low = np.floor(positions).astype(np.intp)
    return _Layout(
        channels=channels,
        rate_hz=rate_hz,
        n_features=len(_names(channels, rate_hz)),
        n_signals=len(channels) + len(triads),
        triad_columns=triad_columns,
        pair_left=np.array([i for i, _ in pairs], dtype=np.intp),
        pair_right=np.array([j for _, j in pairs], dtype=np.intp),
        acc_columns=np.array([index[c] for c in ACC_CHANNELS], dtype=np.intp) if _has_acc(channels) else None,
        percentile_low=low,
        percentile_high=np.minimum(low + 1, n_samples - 1),
        percentile_weight=positions - low,
        spectrum=spectral_layout(n_samples, rate_hz),
    )


def _extract_block(windows: np.ndarray, layout: _Layout) -> np.ndarray:
    """``extract_features`` for one block of windows, all of them at once."""
    x = _signals(windows, layout)  # (n, n_signals, n_samples) float64, contiguous
    n_samples = x.shape[-1]
    mean = x.sum(axis=-1) / n_samples
    d = x - mean[..., None]
    d2 = d * d
    var = d2.sum(axis=-1) / n_samples
    flat = var <= (FLAT_TOLERANCE * (1.0 + np.abs(mean))) ** 2
    std = np.where(flat, 0.0, np.sqrt(var))

    columns = _time_stats(x, mean, var, std, layout)
    columns += _shape_stats(d, d2, var, flat)
    columns += _jerk_stats(x, layout.rate_hz)
    columns += spectral_features(d, flat, layout.spectrum)
    per_signal = np.stack(columns, axis=-1).reshape(len(x), -1)
    return np.concatenate([per_signal, *_cross_features(d, std, mean, layout)], axis=1)


def _check_channels(channels: Sequence[str], rate_hz: float) -> None:
    if isinstance(channels, str) or len(channels) == 0 or len(set(channels)) != len(channels):
        raise ValueError(f"channels must be a non-empty sequence of distinct names, got {channels!r}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")


def _signals(windows: np.ndarray, layout: _Layout) -> np.ndarray:
    """The channels plus triad magnitudes as one (n, n_signals, n_samples) float64 array."""
    n, samples, n_channels = windows.shape
    x = np.empty((n, layout.n_signals, samples))
    x[:, :n_channels] = windows.transpose(0, 2, 1)
    if len(layout.triad_columns):
        triads = x[:, layout.triad_columns]  # (n, n_triads, 3, samples)
        x[:, n_channels:] = np.sqrt(np.einsum("ntks,ntks->nts", triads, triads))
    return x


def _time_stats(x: np.ndarray, mean: np.ndarray, var: np.ndarray, std: np.ndarray, layout: _Layout) -> list[np.ndarray]:
    """mean, std, min, max, rms, p10, p50, p90, iqr (percentiles interpolated as numpy's default)."""
    ordered = np.sort(x, axis=-1)
    low = ordered[..., layout.percentile_low]
    p10, p25, p50, p75, p90 = np.moveaxis(low + layout.percentile_weight * (ordered[..., layout.percentile_high] - low), -1, 0)
    rms = np.sqrt(mean * mean + var)
    return [mean, std, ordered[..., 0], ordered[..., -1], rms, p10, p50, p90, p75 - p25]


def _shape_stats(d: np.ndarray, d2: np.ndarray, var: np.ndarray, flat: np.ndarray) -> list[np.ndarray]:
    """Skewness, excess kurtosis (both biased, as scipy.stats defaults) and mean-crossing rate."""
    m3 = np.einsum("...i,...i->...", d2, d) / d.shape[-1]
    m4 = np.einsum("...i,...i->...", d2, d2) / d.shape[-1]
    safe_var = np.where(flat, 1.0, var)
    skew = np.where(flat, 0.0, m3 / (safe_var * np.sqrt(safe_var)))
    kurtosis = np.where(flat, 0.0, m4 / (safe_var * safe_var) - 3.0)
    above = d > 0
    crossings = (above[..., 1:] != above[..., :-1]).sum(axis=-1)
    mcr = np.where(flat, 0.0, crossings / (d.shape[-1] - 1))
    return [skew, kurtosis, mcr]


def _jerk_stats(x: np.ndarray, rate_hz: float) -> list[np.ndarray]:
    """Mean absolute and standard deviation of the first difference, in units per second."""
    jerk = (x[..., 1:] - x[..., :-1]) * rate_hz
    count = jerk.shape[-1]
    jerk_mean = jerk.sum(axis=-1) / count
    centred = jerk - jerk_mean[..., None]
    return [np.abs(jerk).sum(axis=-1) / count, np.sqrt(np.einsum("...i,...i->...", centred, centred) / count)]


def _cross_features(d: np.ndarray, std: np.ndarray, mean: np.ndarray, layout: _Layout) -> list[np.ndarray]:
    """Pearson correlations within each triad, then the gravity direction when acc is present."""
    blocks = []
    if len(layout.pair_left):
        scale = std[:, layout.pair_left] * std[:, layout.pair_right]
        covariance = np.einsum("nps,nps->np", d[:, layout.pair_left], d[:, layout.pair_right]) / d.shape[-1]
        blocks.append(np.where(scale > 0, covariance / np.where(scale > 0, scale, 1.0), 0.0))
    if layout.acc_columns is not None:
        blocks.append(_gravity(mean[:, layout.acc_columns]))
    return blocks


def _gravity(acc_mean: np.ndarray) -> np.ndarray:
    """Unit gravity vector (mean acceleration, normalised) and pitch, roll, tilt in radians.

    pitch = atan2(-gx, hypot(gy, gz)), roll = atan2(gy, gz), tilt = angle between gravity
    and the device z axis. A zero mean vector gives all zeros.
    """
    norm = np.sqrt(np.einsum("ij,ij->i", acc_mean, acc_mean))
    out = np.empty((len(acc_mean), len(GRAVITY_NAMES)))
    unit = out[:, :3]
    np.divide(acc_mean, np.where(norm > 0, norm, 1.0)[:, None], out=unit)  # a zero vector stays zero
    ux, uy, uz = unit.T
    out[:, 3] = np.arctan2(-ux, np.hypot(uy, uz))
    out[:, 4] = np.arctan2(uy, uz)
    out[:, 5] = np.where(norm > 0, np.arccos(np.minimum(np.maximum(uz, -1.0), 1.0)), 0.0)
    return out
