"""extract_features: every feature group against a direct computation on small signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from features.contract import ACC_CHANNELS, ALL_CHANNELS, GYRO_CHANNELS, STANDARD_GRAVITY
from features.extract import FEATURE_SET_VERSION, extract_features, feature_names
from features.spectral import BANDS_HZ, autocorr_lag_range

RATE = 50.0
N = 100


def features_by_name(windows: np.ndarray, channels=ALL_CHANNELS, rate: float = RATE) -> dict[str, np.ndarray]:
    matrix = extract_features(windows, channels, rate)
    names = feature_names(channels, rate)
    assert matrix.shape == (len(windows), len(names))
    return dict(zip(names, matrix.T))


def random_windows(n_windows: int = 5, seed: int = 0, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    windows = rng.normal(size=(n_windows, n, 6))
    windows[:, :, 2] += STANDARD_GRAVITY
    windows[:, :, 0] += 3 * np.sin(2 * np.pi * 1.8 * t)  # a gait-like rhythm on ax
    return windows


def signals(windows: np.ndarray) -> dict[str, np.ndarray]:
    """Each channel and both magnitudes, (n_windows, n_samples), computed directly."""
    out = {name: windows[:, :, i] for i, name in enumerate(ALL_CHANNELS)}
    out["amag"] = np.sqrt((windows[:, :, :3] ** 2).sum(axis=2))
    out["gmag"] = np.sqrt((windows[:, :, 3:] ** 2).sum(axis=2))
    return out


def sine(freq_hz: float, n: int = N, rate: float = RATE, amplitude: float = 1.0, offset: float = 0.0) -> np.ndarray:
    return offset + amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n) / rate)


def with_channel(signal: np.ndarray, channel: int = 0) -> np.ndarray:
    """One window whose ``channel`` carries ``signal``; acc z carries gravity, the rest rest."""
    window = np.zeros((1, len(signal), 6))
    window[0, :, 2] = STANDARD_GRAVITY
    window[0, :, channel] = signal
    return window


# --- names and shape -------------------------------------------------------------------


def test_names_match_columns_and_are_unique() -> None:
    for channels in (ALL_CHANNELS, ACC_CHANNELS, GYRO_CHANNELS):
        names = feature_names(channels, RATE)
        matrix = extract_features(random_windows()[:, :, [ALL_CHANNELS.index(c) for c in channels]], channels, RATE)
        assert matrix.shape == (5, len(names))
        assert len(set(names)) == len(names)
        assert matrix.dtype == np.float64
    assert isinstance(FEATURE_SET_VERSION, str) and FEATURE_SET_VERSION


def test_feature_counts() -> None:
    assert len(feature_names(ALL_CHANNELS, 50.0)) == 196
    assert len(feature_names(ACC_CHANNELS, 50.0)) == 101
    # at 10 Hz the 5-10 Hz band starts at Nyquist and is left out of every signal
    assert len(feature_names(ALL_CHANNELS, 10.0)) == 196 - 8
    assert not any(n.endswith("band_5_10hz") for n in feature_names(ALL_CHANNELS, 10.0))


def test_acc_only_has_no_gyro_features_and_equals_the_six_channel_columns() -> None:
    windows = random_windows()
    acc_names = feature_names(ACC_CHANNELS, RATE)
    assert not any(name.startswith(("gx", "gy", "gz", "gmag", "corr_g")) for name in acc_names)
    assert {"amag_mean", "corr_ax_ay", "grav_z", "tilt"} <= set(acc_names)
    acc = features_by_name(windows[:, :, :3], ACC_CHANNELS)
    full = features_by_name(windows)
    for name in acc_names:
        np.testing.assert_allclose(acc[name], full[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_channel_order_only_moves_columns() -> None:
    windows = random_windows()
    order = [5, 2, 0, 4, 1, 3]
    shuffled = tuple(ALL_CHANNELS[i] for i in order)
    a = features_by_name(windows)
    b = features_by_name(windows[:, :, order], shuffled)
    for name in ("ax_std", "gz_dom_freq", "amag_mean", "gmag_ac_peak", "corr_gx_gz", "pitch"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-12, atol=1e-12, err_msg=name)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="n_windows"):
        extract_features(np.zeros((2, 10, 5)), ALL_CHANNELS, RATE)
    with pytest.raises(ValueError, match="rate_hz"):
        extract_features(np.zeros((2, 10, 6)), ALL_CHANNELS, 0.0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        extract_features(np.zeros((2, 1, 6)), ALL_CHANNELS, RATE)


# --- each feature group against a direct computation -----------------------------------


def test_time_domain_stats_match_numpy() -> None:
    windows = random_windows()
    got = features_by_name(windows)
    for name, x in signals(windows).items():
        expected = {
            "mean": x.mean(axis=1),
            "std": x.std(axis=1),
            "min": x.min(axis=1),
            "max": x.max(axis=1),
            "rms": np.sqrt((x**2).mean(axis=1)),
            "p10": np.percentile(x, 10, axis=1),
            "p50": np.median(x, axis=1),
            "p90": np.percentile(x, 90, axis=1),
            "iqr": np.percentile(x, 75, axis=1) - np.percentile(x, 25, axis=1),
        }
        for stat, value in expected.items():
            np.testing.assert_allclose(got[f"{name}_{stat}"], value, rtol=1e-10, atol=1e-12, err_msg=f"{name}_{stat}")


def test_percentiles_on_an_odd_length_window() -> None:
    x = np.random.default_rng(3).normal(size=(2, 37, 3))
    got = features_by_name(x, ACC_CHANNELS)
    np.testing.assert_allclose(got["ay_p10"], np.percentile(x[:, :, 1], 10, axis=1))
    np.testing.assert_allclose(got["az_iqr"], stats.iqr(x[:, :, 2], axis=1))


def test_shape_stats_match_scipy_and_a_crossing_loop() -> None:
    windows = random_windows()
    got = features_by_name(windows)
    for name, x in signals(windows).items():
        np.testing.assert_allclose(got[f"{name}_skew"], stats.skew(x, axis=1), rtol=1e-9, err_msg=name)
        np.testing.assert_allclose(got[f"{name}_kurtosis"], stats.kurtosis(x, axis=1), rtol=1e-9, err_msg=name)
        for w in range(len(x)):
            d = x[w] - x[w].mean()
            crossings = sum(1 for t in range(len(d) - 1) if (d[t] > 0) != (d[t + 1] > 0))
            assert got[f"{name}_mcr"][w] == pytest.approx(crossings / (len(d) - 1))


def test_mean_crossing_rate_of_a_sine() -> None:
    # sin(2 pi 2 t + 0.3) over 0..1.98 s crosses its mean at t = (k pi - 0.3) / (4 pi), k = 1..8
    x = 0.3 + np.sin(2 * np.pi * 2.0 * np.arange(N) / RATE + 0.3)
    assert features_by_name(with_channel(x))["ax_mcr"][0] == pytest.approx(8 / 99)
    touching = np.array([-1.0, 0.0, 1.0, 1.0, 0.0, -1.0, -1.0, 1.0])  # through the mean twice, then a jump
    assert features_by_name(with_channel(touching))["ax_mcr"][0] == pytest.approx(3 / 7)


def test_jerk_matches_direct_difference() -> None:
    windows = random_windows()
    got = features_by_name(windows)
    for name, x in signals(windows).items():
        jerk = np.array([[(w[t + 1] - w[t]) * RATE for t in range(len(w) - 1)] for w in x])
        np.testing.assert_allclose(got[f"{name}_jerk_mean"], np.abs(jerk).mean(axis=1), rtol=1e-10)
        np.testing.assert_allclose(got[f"{name}_jerk_std"], jerk.std(axis=1), rtol=1e-10)


def naive_spectrum(x: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Non-DC power |DFT|^2 of the demeaned signal by the DFT sum, and its frequencies."""
    d = x - x.mean()
    n = len(d)
    ks = range(1, n // 2 + 1)
    power = np.array([abs(sum(d[t] * np.exp(-2j * np.pi * k * t / n) for t in range(n))) ** 2 for k in ks])
    return power, np.array([k * rate / n for k in ks])


@pytest.mark.parametrize(("n", "rate"), [(50, 25.0), (41, 50.0), (64, 10.0)])
def test_spectral_features_match_a_direct_dft(n: int, rate: float) -> None:
    x = np.random.default_rng(7).normal(size=(1, n, 3)).cumsum(axis=1)  # a random walk: mostly low frequencies
    got = features_by_name(x, ACC_CHANNELS, rate)
    for c, name in enumerate(ACC_CHANNELS):
        power, freqs = naive_spectrum(x[0, :, c], rate)
        share = power / power.sum()
        entropy = -sum(p * math.log(p) for p in share if p > 0) / math.log(len(share))
        assert got[f"{name}_dom_freq"][0] == pytest.approx(freqs[np.argmax(power)])
        assert got[f"{name}_spec_entropy"][0] == pytest.approx(entropy, rel=1e-9)
        for lo, hi in BANDS_HZ:
            if lo < rate / 2:
                expected = share[(freqs >= lo) & (freqs < hi)].sum()
                assert got[f"{name}_band_{lo:g}_{hi:g}hz"][0] == pytest.approx(expected, abs=1e-12)


def test_sine_has_its_dominant_frequency_band_and_low_entropy() -> None:
    got = features_by_name(with_channel(sine(2.0, amplitude=3.0)))
    assert got["ax_dom_freq"][0] == pytest.approx(2.0)
    assert got["ax_band_2_3hz"][0] == pytest.approx(1.0)
    assert got["ax_band_1_2hz"][0] == pytest.approx(0.0, abs=1e-20)
    assert got["ax_spec_entropy"][0] < 0.05
    noise = features_by_name(random_windows(n=N))
    assert np.all(noise["gx_spec_entropy"] > 0.8)


def naive_autocorr_peak(x: np.ndarray, rate: float) -> tuple[float, float]:
    """Highest strict-left local maximum of sum d[t]d[t+k] / sum d^2 over the lag range."""
    d = x - x.mean()
    n = len(d)
    r = [sum(d[t] * d[t + k] for t in range(n - k)) / sum(d * d) for k in range(n)]
    low, high = autocorr_lag_range(n, rate)
    peaks = [(r[k], k) for k in range(low, high + 1) if r[k] > r[k - 1] and r[k] >= r[k + 1]]
    if not peaks:
        return 0.0, 0.0
    value, lag = max(peaks, key=lambda p: (p[0], -p[1]))
    return value, lag / rate


def test_autocorrelation_matches_a_direct_loop() -> None:
    windows = random_windows(3)
    got = features_by_name(windows)
    for name, x in signals(windows).items():
        for w in range(len(x)):
            peak, lag = naive_autocorr_peak(x[w], RATE)
            assert got[f"{name}_ac_peak"][w] == pytest.approx(peak, abs=1e-12), name
            assert got[f"{name}_ac_lag"][w] == pytest.approx(lag), name


def test_autocorrelation_lag_range_covers_steps_and_strides() -> None:
    assert autocorr_lag_range(100, 50.0) == (13, 50)  # 0.26-1.0 s: at most half a 2 s window
    assert autocorr_lag_range(400, 50.0) == (13, 100)  # 0.26-2.0 s
    assert autocorr_lag_range(100, 10.0) == (3, 20)
    low, high = autocorr_lag_range(10, 50.0)
    assert low > high  # too short: no search, peak and lag are 0
    short = features_by_name(np.random.default_rng(0).normal(size=(2, 10, 3)), ACC_CHANNELS)
    assert short["ax_ac_peak"].tolist() == [0, 0] and short["ax_ac_lag"].tolist() == [0, 0]


def test_periodic_signal_peaks_at_its_period() -> None:
    got = features_by_name(with_channel(sine(2.0, amplitude=2.0)))  # period 0.5 s = 25 samples
    assert got["ax_ac_lag"][0] == pytest.approx(0.5)
    assert got["ax_ac_peak"][0] == pytest.approx(naive_autocorr_peak(sine(2.0), RATE)[0])
    assert got["ax_ac_peak"][0] > 0.7
    drift = features_by_name(with_channel(np.linspace(0.0, 1.0, N)))  # no local maximum in range
    assert drift["ax_ac_peak"][0] == 0.0 and drift["ax_ac_lag"][0] == 0.0


def test_cross_axis_correlations_match_corrcoef() -> None:
    windows = random_windows()
    windows[:, :, 1] += 0.5 * windows[:, :, 0]
    windows[:, :, 5] -= windows[:, :, 3]
    got = features_by_name(windows)
    for a, b in [("ax", "ay"), ("ax", "az"), ("ay", "az"), ("gx", "gy"), ("gx", "gz"), ("gy", "gz")]:
        i, j = ALL_CHANNELS.index(a), ALL_CHANNELS.index(b)
        expected = [np.corrcoef(w[:, i], w[:, j])[0, 1] for w in windows]
        np.testing.assert_allclose(got[f"corr_{a}_{b}"], expected, rtol=1e-10)
    assert np.all(got["corr_ax_ay"] > 0.5) and np.all(got["corr_gx_gz"] < -0.5)


@pytest.mark.parametrize(
    ("gravity", "unit", "pitch", "roll", "tilt"),
    [
        ((0, 0, 1), (0, 0, 1), 0.0, 0.0, 0.0),  # flat, screen up
        ((0, 0, -1), (0, 0, -1), 0.0, math.pi, math.pi),  # flat, screen down
        ((1, 0, 0), (1, 0, 0), -math.pi / 2, 0.0, math.pi / 2),  # on its side, x up
        ((0, 1, 0), (0, 1, 0), 0.0, math.pi / 2, math.pi / 2),  # upright, y up
        ((0, 1, 1), (0, 2**-0.5, 2**-0.5), 0.0, math.pi / 4, math.pi / 4),  # tilted 45 degrees
    ],
)
def test_gravity_direction_and_angles(gravity, unit, pitch, roll, tilt) -> None:
    window = np.zeros((1, N, 6))
    window[0, :, :3] = np.array(gravity) * STANDARD_GRAVITY
    window[0, :, :3] += np.where(np.arange(N) % 2, 0.5, -0.5)[:, None] * [1, -1, 0.5]  # a shake of exactly zero mean
    got = features_by_name(window)
    np.testing.assert_allclose([got["grav_x"][0], got["grav_y"][0], got["grav_z"][0]], unit, atol=1e-12)
    assert got["pitch"][0] == pytest.approx(pitch, abs=1e-9)
    assert got["roll"][0] == pytest.approx(roll, abs=1e-9)
    assert got["tilt"][0] == pytest.approx(tilt, abs=1e-7)


def test_gravity_matches_direct_formulas_on_random_orientations() -> None:
    windows = random_windows()
    windows[:, :, :3] += np.random.default_rng(5).normal(scale=5.0, size=(5, 1, 3))
    got = features_by_name(windows)
    for w, window in enumerate(windows):
        g = window[:, :3].mean(axis=0)
        ux, uy, uz = g / np.linalg.norm(g)
        assert got["grav_x"][w] == pytest.approx(ux)
        assert got["pitch"][w] == pytest.approx(math.atan2(-ux, math.sqrt(uy * uy + uz * uz)))
        assert got["roll"][w] == pytest.approx(math.atan2(uy, uz))
        assert got["tilt"][w] == pytest.approx(math.acos(uz))


# --- constant input, determinism, blocks ------------------------------------------------


@pytest.mark.parametrize("channels", [ALL_CHANNELS, ACC_CHANNELS])
def test_constant_signals_give_finite_zero_spread(channels) -> None:
    windows = np.empty((3, N, len(channels)))
    windows[:] = np.linspace(-3.3, 9.81, len(channels))  # each channel constant, incl. a rounding-prone value
    windows[1] = 0.0  # all zero: gravity vector undefined
    got = features_by_name(windows, channels)
    assert all(np.isfinite(v).all() for v in got.values())
    for name, value in got.items():
        if (
            name.endswith(
                (
                    "_std",
                    "_iqr",
                    "_skew",
                    "_kurtosis",
                    "_mcr",
                    "_jerk_mean",
                    "_jerk_std",
                    "_dom_freq",
                    "_spec_entropy",
                    "_ac_peak",
                    "_ac_lag",
                )
            )
            or "_band_" in name
            or name.startswith("corr_")
        ):
            np.testing.assert_array_equal(value, 0.0, err_msg=name)
    np.testing.assert_allclose(got["ax_mean"], [-3.3, 0.0, -3.3])
    np.testing.assert_allclose(got[f"{channels[-1]}_min"], got[f"{channels[-1]}_max"])
    np.testing.assert_array_equal(got["tilt"][1], 0.0)


def test_deterministic_and_independent_of_batching() -> None:
    windows = random_windows(600, seed=2)  # more than one internal block
    first = extract_features(windows, ALL_CHANNELS, RATE)
    np.testing.assert_array_equal(first, extract_features(windows, ALL_CHANNELS, RATE))
    for row in (0, 255, 256, 599):
        np.testing.assert_allclose(
            first[row], extract_features(windows[row : row + 1], ALL_CHANNELS, RATE)[0], rtol=1e-12, atol=1e-12
        )


def test_float32_windows_give_float64_features_close_to_float64_input() -> None:
    windows = random_windows()
    as32 = extract_features(windows.astype(np.float32), ALL_CHANNELS, RATE)
    assert as32.dtype == np.float64
    np.testing.assert_allclose(as32, extract_features(windows.astype(np.float32).astype(float), ALL_CHANNELS, RATE))


def test_empty_batch() -> None:
    assert extract_features(np.empty((0, N, 3)), ACC_CHANNELS, RATE).shape == (0, 101)
