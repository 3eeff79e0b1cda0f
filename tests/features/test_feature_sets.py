"""Feature-set versions: the gravity-frame signals of imu-stats-2 against hand-made motion,
the dispatch by a spec's version, and imu-stats-1 unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from features.contract import ALL_CHANNELS
from features.errors import SpecError
from features.extract import extract_features, feature_names
from features.feature_sets import (
    FEATURE_SETS,
    IMU_STATS_1,
    IMU_STATS_2,
    feature_names_for,
    featurize,
    with_gravity_frame,
)
from features.spec import WindowSpec

RATE = 50.0
T = np.arange(100) / RATE


def tilted_window(up: np.ndarray, vertical: np.ndarray, horizontal: np.ndarray, spin: np.ndarray) -> np.ndarray:
    """A window whose gravity points along unit ``up``: ``vertical`` body acceleration along it,
    ``horizontal`` across it (along a fixed perpendicular), and a gyro turning ``spin`` about it."""
    across = np.cross(up, [0.0, 1.0, 0.0] if abs(up[1]) < 0.9 else [1.0, 0.0, 0.0])
    across /= np.linalg.norm(across)
    acc = 9.8 * up + vertical[:, None] * up + horizontal[:, None] * across
    gyro = spin[:, None] * up + 0.3 * across  # a constant tilt rate across the vertical too
    return np.hstack([acc, gyro])[None].astype(np.float32)


def test_gravity_frame_signals_recover_the_motion_whatever_the_phone_orientation() -> None:
    vertical = 2.0 * np.sin(2 * np.pi * 2.0 * T)  # whole cycles: the window mean stays gravity
    horizontal = 1.5 * np.sin(2 * np.pi * 1.0 * T)
    spin = 0.8 * np.cos(2 * np.pi * 0.5 * T)  # one whole cycle
    for up in (np.array([0.0, 0.0, 1.0]), np.array([1.0, 2.0, -2.0]) / 3.0):
        signals, names = with_gravity_frame(tilted_window(up, vertical, horizontal, spin), ALL_CHANNELS)
        assert names == (*ALL_CHANNELS, "avert", "ahoriz", "gvert", "ghoriz")
        got = {name: signals[0, :, i] for i, name in enumerate(names)}
        np.testing.assert_allclose(got["avert"], vertical, atol=1e-4)
        np.testing.assert_allclose(got["ahoriz"], np.abs(horizontal), atol=1e-4)
        np.testing.assert_allclose(got["gvert"], spin, atol=1e-5)
        np.testing.assert_allclose(got["ghoriz"], 0.3, atol=1e-5)
        np.testing.assert_array_equal(signals[0, :, :6], tilted_window(up, vertical, horizontal, spin)[0])


def test_acc_only_windows_get_the_acceleration_signals_only() -> None:
    window = tilted_window(np.array([0.0, 0.0, 1.0]), np.zeros(100), np.zeros(100), np.zeros(100))[:, :, :3]
    _, names = with_gravity_frame(window, ("ax", "ay", "az"))
    assert names == ("ax", "ay", "az", "avert", "ahoriz")
    spec = WindowSpec(channels=("ax", "ay", "az"), feature_set_version=IMU_STATS_2)
    assert featurize(window, spec).shape == (1, len(feature_names_for(spec)))


def test_imu_stats_2_is_imu_stats_1_computed_on_more_signals() -> None:
    windows = np.random.default_rng(0).normal(size=(7, 100, 6)).astype(np.float32)
    windows[:, :, 0] += 9.8
    v1 = WindowSpec(feature_set_version=IMU_STATS_1)
    np.testing.assert_array_equal(featurize(windows, v1), extract_features(windows, ALL_CHANNELS, RATE))
    assert feature_names_for(v1) == feature_names(ALL_CHANNELS, RATE)
    v2 = WindowSpec(feature_set_version=IMU_STATS_2)
    names = feature_names_for(v2)
    got = featurize(windows, v2)
    assert got.shape == (7, len(names)) and np.isfinite(got).all()
    assert {"avert_std", "ahoriz_p90", "gvert_ac_peak", "ghoriz_band_0_1hz"} <= set(names)
    signals, signal_names = with_gravity_frame(windows, ALL_CHANNELS)
    np.testing.assert_array_equal(got, extract_features(signals, signal_names, RATE))


def test_a_spec_without_a_version_is_imu_stats_1_and_an_unknown_one_is_refused() -> None:
    windows = np.ones((2, 100, 6), dtype=np.float32)
    np.testing.assert_array_equal(
        featurize(windows, WindowSpec()), featurize(windows, WindowSpec(feature_set_version=IMU_STATS_1))
    )
    with pytest.raises(SpecError, match="imu-stats-9.*not one this posture computes") as err:
        featurize(windows, WindowSpec(feature_set_version="imu-stats-9"))
    assert all(version in str(err.value) for version in FEATURE_SETS)
