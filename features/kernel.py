"""The per-window feature arithmetic, compiled with numba.

``fill_features`` turns one block of prepared signals into feature rows, one pass per
signal. In numpy the same arithmetic took ~150 array operations per block, each with a
fixed cost of microseconds: that overhead, not the arithmetic, dominated the small
batches a server featurizes. Measured here on 100 x 6 windows, ``extract_features``
went from ~210 to ~45 µs for one window and from ~60 to ~18 µs per window in batches.

``prepare_signals`` builds a block's signals (channels, triad magnitudes), means and demeaned
copies in one pass, bit for bit what numpy's transpose, einsum, sum and subtraction gave
(tests/features/test_featurize_pinned.py): ``featurize`` with imu-stats-4 went from ~54 to
~25 µs per window in batches of 16-64 and from ~34 to ~24 in batches of 256 (~80 to ~43 for
one window), most of it numpy's temporaries, whose page faults cost more than their arithmetic.
Per window of 12 signals, ``fill_features`` now takes ~14 µs (autocorrelation ~5, the
spectrum's 600 logs ~4, moments ~3.5), numpy's FFT ~3 and sort ~2.5.

The sort and the FFT stay in numpy, batched (numpy's sort is SIMD, 15x faster than
numba's on 100 samples); this module reads their results. Columns are in the order
``features.extract.feature_names`` gives. ``cache=True`` keeps the machine code in
``__pycache__`` (or ``NUMBA_CACHE_DIR``): only a machine's first process compiles (~4 s).
No kernel may call itself: numba then segfaults loading it from that cache.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

# A signal whose variance is below (FLAT_TOLERANCE * (1 + |mean|))^2 counts as constant:
# its spread, shape, spectral and correlation features are exactly 0, never NaN.
FLAT_TOLERANCE = 1e-9
N_STATS = 9  # mean, std, min, max, rms, p10, p50, p90, iqr
N_SHAPE_AND_JERK = 5  # skew, kurtosis, mcr, jerk_mean, jerk_std
N_SPECTRAL = 4  # dom_freq, spec_entropy, ac_peak, ac_lag; plus one share per band
N_GRAVITY = 6
PAIRWISE_BLOCK = 128  # numpy's pairwise summation block (PW_BLOCKSIZE)


class KernelLayout(NamedTuple):
    """What ``fill_features`` needs to know about a (channels, window length, rate)."""

    rate_hz: float
    percentile_low: np.ndarray  # sorted-sample indices and weights of p10, p25, p50, p75, p90
    percentile_high: np.ndarray
    percentile_weight: np.ndarray
    freqs: np.ndarray  # frequency of each non-DC bin of rfft(d, n)
    band_of_bin: np.ndarray  # index of the band each non-DC bin falls in, -1 for none
    n_bands: int
    entropy_norm: float  # log of the bin count: entropy / it lies in [0, 1]
    lag_low: int  # autocorrelation lags searched for a peak, inclusive; none when low > high
    lag_high: int
    pair_left: np.ndarray  # signal indices of each correlated pair
    pair_right: np.ndarray
    acc_columns: np.ndarray  # ax, ay, az signal indices; empty without a complete accelerometer


def pairwise_plan(n_samples: int) -> np.ndarray:
    """How numpy sums a contiguous row of ``n_samples``, as ``prepare_signals`` replays it: rows
    (start, length) of blocks to sum, in order, and (-1, -1) to add the last two sums.

    numpy sums a block of at most ``PAIRWISE_BLOCK`` eight ways; it splits a longer row in two
    (the first part a multiple of 8 long) and adds the parts' sums. The kernel replays this
    list because a numba function that calls itself breaks ``cache=True`` (a segfault on load).
    """

    def plan(start: int, n: int) -> list[tuple[int, int]]:
        if n <= PAIRWISE_BLOCK:
            return [(start, n)]
        half = n // 2 - n // 2 % 8
        return [*plan(start, half), *plan(start + half, n - half), (-1, -1)]

    return np.array(plan(0, n_samples), dtype=np.intp)


@njit(cache=True, nogil=True)
def prepare_signals(
    windows: np.ndarray, triads: np.ndarray, plan: np.ndarray, x: np.ndarray, mean: np.ndarray, d: np.ndarray
) -> None:
    """The signals of windows (n, n_samples, n_channels) into ``x`` (n, n_signals, n_samples) float64:
    the channels, then the magnitude of each triad (rows of ``triads``, channel indices); their
    means into ``mean`` and the demeaned signals into ``d``.

    One pass instead of numpy's transpose, einsum, sum and subtraction, each a temporary array;
    the values are numpy's: the mean is numpy's sum, replayed from ``pairwise_plan(n_samples)``.
    """
    n_windows, n_samples, n_channels = windows.shape
    sums = np.empty(plan.shape[0])
    for w in range(n_windows):
        for t in range(n_samples):
            for c in range(n_channels):
                x[w, c, t] = windows[w, t, c]
        for k in range(triads.shape[0]):
            a, b, c = x[w, triads[k, 0]], x[w, triads[k, 1]], x[w, triads[k, 2]]
            for t in range(n_samples):
                x[w, n_channels + k, t] = math.sqrt(a[t] * a[t] + b[t] * b[t] + c[t] * c[t])
        for s in range(x.shape[1]):
            mean[w, s] = planned_sum(x[w, s], plan, sums) / n_samples
            for t in range(n_samples):
                d[w, s, t] = x[w, s, t] - mean[w, s]


@njit(cache=True, nogil=True)
def planned_sum(a: np.ndarray, plan: np.ndarray, sums: np.ndarray) -> float:
    """The sum of ``a`` by ``pairwise_plan``, with ``sums`` as the stack of partial sums."""
    top = 0
    for i in range(plan.shape[0]):
        if plan[i, 0] < 0:
            top -= 1
            sums[top - 1] += sums[top]
        else:
            sums[top] = _block_sum(a, plan[i, 0], plan[i, 1])
            top += 1
    return 0.0 + sums[0]  # numpy adds the row's sum to its identity, 0: -0.0 becomes 0.0


@njit(cache=True, nogil=True)
def _block_sum(a: np.ndarray, start: int, n: int) -> float:
    """``a[start:start + n].sum()`` for n up to ``PAIRWISE_BLOCK``, as numpy: eight running sums."""
    if n < 8:
        total = 0.0
        for i in range(start, start + n):
            total += a[i]
        return total
    r0, r1, r2, r3 = a[start], a[start + 1], a[start + 2], a[start + 3]
    r4, r5, r6, r7 = a[start + 4], a[start + 5], a[start + 6], a[start + 7]
    end = start + n - n % 8
    for i in range(start + 8, end, 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(end, start + n):
        total += a[i]
    return total


@njit(cache=True, nogil=True)
def fill_features(
    x: np.ndarray,
    ordered: np.ndarray,
    mean: np.ndarray,
    d: np.ndarray,
    spectrum: np.ndarray,
    layout: KernelLayout,
    out: np.ndarray,
) -> None:
    """Write the feature rows of a block into the first n_features columns of ``out``.

    ``x`` (n, n_signals, n_samples) holds the signals, ``ordered`` each one sorted,
    ``mean`` their means and ``d`` them demeaned (``prepare_signals``); ``spectrum`` is ``rfft(d)``.
    """
    n_windows, n_signals, n_samples = x.shape
    per_signal = N_STATS + N_SHAPE_AND_JERK + N_SPECTRAL + layout.n_bands
    std = np.empty(n_signals)
    first_lag = layout.lag_low - 1  # the lags either side of the searched range are needed too
    lags = np.empty(max(0, layout.lag_high - layout.lag_low + 3))
    bands = np.empty(layout.n_bands)
    for w in range(n_windows):
        row = out[w]
        for s in range(n_signals):
            offset = s * per_signal
            std[s], energy = _moments_and_shape(x[w, s], ordered[w, s], mean[w, s], d[w, s], layout, row, offset)
            _autocorrelation(d[w, s], first_lag, lags)
            offset += N_STATS + N_SHAPE_AND_JERK
            _spectrum(spectrum[w, s], energy, lags, bands, std[s] == 0.0, layout, row, offset)
        offset = n_signals * per_signal
        _correlations(d[w], std, layout, row, offset)
        if layout.acc_columns.size:
            _gravity(mean[w], layout.acc_columns, row, offset + layout.pair_left.size)


@njit(cache=True, nogil=True)
def _moments_and_shape(
    x: np.ndarray,
    ordered: np.ndarray,
    mean: float,
    d: np.ndarray,
    layout: KernelLayout,
    row: np.ndarray,
    offset: int,
) -> tuple[float, float]:
    """Time-domain statistics, skew, kurtosis, mean-crossing rate and jerk of one signal; returns
    its std and ``sum_t d[t]^2``.

    Percentiles are interpolated as numpy's default; skew and excess kurtosis are biased,
    as scipy.stats' defaults. A constant signal gets std 0, which marks it for the rest.
    The moments and the jerk share one loop: their sums are separate chains of additions, each
    in sample order, which the CPU runs side by side.
    """
    n = d.size
    squares = m3 = m4 = jerk_abs = jerk_sum = 0.0
    crossings = 0
    for t in range(n):
        v2 = d[t] * d[t]
        squares += v2
        m3 += v2 * d[t]
        m4 += v2 * v2
        if t and (d[t] > 0) != (d[t - 1] > 0):
            crossings += 1
        if t < n - 1:
            jerk = (x[t + 1] - x[t]) * layout.rate_hz
            jerk_abs += abs(jerk)
            jerk_sum += jerk
    var = squares / n
    m3 /= n
    m4 /= n
    flat = var <= (FLAT_TOLERANCE * (1.0 + abs(mean))) ** 2

    std = 0.0 if flat else math.sqrt(var)
    row[offset] = mean
    row[offset + 1] = std
    row[offset + 2] = ordered[0]
    row[offset + 3] = ordered[n - 1]
    row[offset + 4] = math.sqrt(mean * mean + var)
    row[offset + 5] = _quantile(ordered, layout, 0)  # p10
    row[offset + 6] = _quantile(ordered, layout, 2)  # p50
    row[offset + 7] = _quantile(ordered, layout, 4)  # p90
    row[offset + 8] = _quantile(ordered, layout, 3) - _quantile(ordered, layout, 1)  # iqr

    jerk_mean = jerk_sum / (n - 1)
    jerk_var = 0.0
    for t in range(n - 1):
        centred = (x[t + 1] - x[t]) * layout.rate_hz - jerk_mean
        jerk_var += centred * centred
    shape = offset + N_STATS
    if flat:
        row[shape : shape + 3] = 0.0
    else:
        row[shape] = m3 / (var * math.sqrt(var))
        row[shape + 1] = m4 / (var * var) - 3.0
        row[shape + 2] = crossings / (n - 1)
    row[shape + 3] = jerk_abs / (n - 1)
    row[shape + 4] = math.sqrt(jerk_var / (n - 1))
    return std, squares


@njit(cache=True, nogil=True)
def _quantile(ordered: np.ndarray, layout: KernelLayout, k: int) -> float:
    """The k-th of p10, p25, p50, p75, p90 of a sorted signal."""
    low = ordered[layout.percentile_low[k]]
    return low + layout.percentile_weight[k] * (ordered[layout.percentile_high[k]] - low)


@njit(cache=True, nogil=True)
def _autocorrelation(d: np.ndarray, first: int, lags: np.ndarray) -> None:
    """``lags[j] = sum_t d[t] d[t + first + j]`` for each of ``lags``.

    The inner loop runs over lags, each with its own accumulator: the compiler vectorises
    it without reordering any sum (3.6 µs for 8 signals of 100 samples and 40 lags; the
    lag-major loop takes 14 µs).
    """
    n = d.size
    lags[:] = 0.0
    for t in range(n - first):
        count = min(lags.size, n - first - t)
        later = d[t + first : t + first + count]
        for j in range(count):
            lags[j] += d[t] * later[j]


@njit(cache=True, nogil=True)
def _spectrum(
    spectrum: np.ndarray,
    energy: float,
    lags: np.ndarray,
    bands: np.ndarray,
    flat: bool,
    layout: KernelLayout,
    row: np.ndarray,
    offset: int,
) -> None:
    """dom_freq, spec_entropy, band shares, ac_peak, ac_lag of one signal (see features.spectral).

    The power of a non-DC bin of ``spectrum`` (the signal's rfft) is ``re^2 + im^2``, as numpy's
    ``real**2 + imag**2``. ``energy`` is the autocorrelation at lag 0, ``lags`` at
    ``lag_low - 1 .. lag_high + 1``; ``bands`` is scratch, one per band.
    """
    n_bins = layout.freqs.size
    total = p_log_p = 0.0
    best_bin = 0
    best_power = spectrum[1].real * spectrum[1].real + spectrum[1].imag * spectrum[1].imag
    bands[:] = 0.0
    for k in range(n_bins):
        z = spectrum[k + 1]
        p = z.real * z.real + z.imag * z.imag
        total += p
        if p > 0:
            p_log_p += p * math.log(p)
        if p > best_power:
            best_bin, best_power = k, p
        if layout.band_of_bin[k] >= 0:
            bands[layout.band_of_bin[k]] += p
    end = offset + N_SPECTRAL + layout.n_bands
    row[offset:end] = 0.0
    if flat or not total > 0:
        return
    row[offset] = layout.freqs[best_bin]
    # Entropy of the shares p/T: log T - sum(p log p) / T, normalised by log(n_bins).
    entropy = (math.log(total) - p_log_p / total) / layout.entropy_norm
    row[offset + 1] = min(max(entropy, 0.0), 1.0)
    for b in range(layout.n_bands):
        row[offset + 2 + b] = bands[b] / total

    # Highest local maximum of the normalised autocorrelation in the gait lag range;
    # none (e.g. a slow drift) leaves peak and lag at 0.
    best = -np.inf
    best_lag = 0
    for j in range(1, lags.size - 1):
        centre = lags[j] / energy
        if centre > lags[j - 1] / energy and centre >= lags[j + 1] / energy and centre > best:
            best = centre
            best_lag = layout.lag_low + j - 1
    if best > -np.inf:
        row[end - 2] = best
        row[end - 1] = best_lag / layout.rate_hz


@njit(cache=True, nogil=True)
def _correlations(d: np.ndarray, std: np.ndarray, layout: KernelLayout, row: np.ndarray, offset: int) -> None:
    """Pearson correlation of each pair within a triad; 0 when either signal is constant."""
    n = d.shape[1]
    for p in range(layout.pair_left.size):
        a, b = layout.pair_left[p], layout.pair_right[p]
        scale = std[a] * std[b]
        covariance = 0.0
        if scale > 0:
            for t in range(n):
                covariance += d[a, t] * d[b, t]
        row[offset + p] = covariance / n / scale if scale > 0 else 0.0


@njit(cache=True, nogil=True)
def _gravity(mean: np.ndarray, acc_columns: np.ndarray, row: np.ndarray, offset: int) -> None:
    """Unit gravity vector (mean acceleration, normalised) and pitch, roll, tilt in radians.

    pitch = atan2(-gx, hypot(gy, gz)), roll = atan2(gy, gz), tilt = angle between gravity
    and the device z axis. A zero mean vector gives all zeros.
    """
    ax, ay, az = mean[acc_columns[0]], mean[acc_columns[1]], mean[acc_columns[2]]
    norm = math.sqrt(ax * ax + ay * ay + az * az)
    if norm == 0:
        row[offset : offset + N_GRAVITY] = 0.0
        return
    ux, uy, uz = ax / norm, ay / norm, az / norm
    row[offset] = ux
    row[offset + 1] = uy
    row[offset + 2] = uz
    row[offset + 3] = math.atan2(-ux, math.hypot(uy, uz))
    row[offset + 4] = math.atan2(uy, uz)
    row[offset + 5] = math.acos(min(max(uz, -1.0), 1.0))
