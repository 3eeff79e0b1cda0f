"""Frequency-domain and periodicity features: their names, bands, bins and lag range
(``features.kernel`` computes the features).

Each signal ``d`` (already demeaned) gets its non-DC power ``|rfft(d)|^2`` (the rfft batched
in numpy by ``features.extract``); band energies, dominant frequency and spectral entropy
come from it. The periodicity peak comes from the autocorrelation ``sum_t d[t] d[t+k]``,
summed directly over the gait lags only (``autocorr_lag_range``).
"""

from __future__ import annotations

import math

import numpy as np

# Fixed bands (Hz, [low, high)) for the share of non-DC spectral power; a band whose
# low edge is at or above Nyquist is left out, so the names depend on the rate only.
BANDS_HZ: tuple[tuple[float, float], ...] = ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 5.0), (5.0, 10.0))
# Autocorrelation lags searched for a periodicity peak: steps and strides of gait.
AC_MIN_LAG_S = 0.25
AC_MAX_LAG_S = 2.0


def bands_for_rate(rate_hz: float) -> list[tuple[float, float]]:
    """The bands of ``BANDS_HZ`` that start below the Nyquist frequency of ``rate_hz``."""
    return [band for band in BANDS_HZ if band[0] < rate_hz / 2.0]


def spectral_feature_names(rate_hz: float) -> list[str]:
    """Names of the per-signal columns ``spectral_features`` returns, in order."""
    bands = [f"band_{lo:g}_{hi:g}hz" for lo, hi in bands_for_rate(rate_hz)]
    return ["dom_freq", "spec_entropy", *bands, "ac_peak", "ac_lag"]


def autocorr_lag_range(n_samples: int, rate_hz: float) -> tuple[int, int]:
    """Inclusive lag range (samples) searched for an autocorrelation peak.

    At most half the window, so the biased estimate still sees two periods; empty
    (low > high) when the window is too short.
    """
    low = max(1, math.ceil(AC_MIN_LAG_S * rate_hz))
    high = min(int(AC_MAX_LAG_S * rate_hz), n_samples // 2, n_samples - 2)
    return low, high


def band_of_bin(freqs: np.ndarray, rate_hz: float) -> np.ndarray:
    """For each bin frequency (``bin_frequencies``): the index of its band, or -1 for none."""
    index = np.full(freqs.size, -1, dtype=np.intp)
    for b, (lo, hi) in enumerate(bands_for_rate(rate_hz)):
        index[(freqs >= lo) & (freqs < hi)] = b
    return index


def bin_frequencies(n_samples: int, rate_hz: float) -> np.ndarray:
    """Frequency (Hz) of each non-DC bin of ``rfft(d, n_samples)``."""
    return np.fft.rfftfreq(n_samples, d=1.0 / rate_hz)[1:]
