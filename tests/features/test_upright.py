"""The causal upright estimate and the tilt features of imu-stats-3, on hand-made streams."""

from __future__ import annotations

import numpy as np
import pytest

from features.feature_sets import IMU_STATS_3, feature_names_for, featurize, window_contexts
from features.spec import WindowSpec
from features.stream_context import UPRIGHT
from features.upright import MOVING_STD, SUSTAINED_S, UprightTracker, gravity_and_spread_of

T = np.arange(100) / 50.0
SPEC = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0)  # windows 1 s apart
SUSTAINED = int(SUSTAINED_S / SPEC.hop_s)  # moving windows in a row before one counts


def window_uprights(windows: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """The upright columns of the stream's context rows."""
    return window_contexts(windows, spec)[:, UPRIGHT]


def still(up: np.ndarray) -> np.ndarray:
    """A motionless 2 s window whose gravity points along ``up`` (6 channels, gyro at rest)."""
    acc = np.tile(9.8 * np.asarray(up) / np.linalg.norm(up), (100, 1))
    return np.hstack([acc, np.zeros((100, 3))]).astype(np.float32)


def walking(up: np.ndarray) -> np.ndarray:
    """Steps of 3 m/s^2 along ``up`` at 2 Hz (whole cycles: the window mean is gravity)."""
    unit = np.asarray(up) / np.linalg.norm(up)
    window = still(unit)
    window[:, :3] += (3.0 * np.sin(2 * np.pi * 2.0 * T))[:, None] * unit
    return window


def test_a_window_is_moving_by_the_spread_of_its_acceleration_magnitude() -> None:
    gravity, spread = gravity_and_spread_of(np.stack([still([0, 0, 1]), walking([0, 0, 1])])[:, :, :3])
    moving = spread > MOVING_STD
    np.testing.assert_allclose(gravity, [[0, 0, 1], [0, 0, 1]], atol=1e-6)
    assert moving.tolist() == [False, True]


def test_the_upright_comes_from_sustained_walking_and_only_from_earlier_windows() -> None:
    upright, tilted = np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.5])
    stream = np.stack([still(tilted)] * 2 + [walking(upright)] * (SUSTAINED + 2) + [still(tilted)] * 2)
    got = window_uprights(stream, SPEC)
    first_known = 2 + SUSTAINED  # the window after the first one that ends SUSTAINED moving windows
    assert np.isnan(got[:first_known]).all()
    np.testing.assert_allclose(got[first_known:], np.tile(upright, (len(stream) - first_known, 1)), atol=1e-6)
    features = featurize(stream, WindowSpec(feature_set_version=IMU_STATS_3), window_contexts(stream, SPEC))[:, -4:]
    assert (features[:first_known] == 0.0).all()  # no upright yet: counted as upright
    tilt = np.arccos(tilted @ upright / np.linalg.norm(tilted))
    np.testing.assert_allclose(features[-1], [tilt, *(tilted / np.linalg.norm(tilted) - upright)], atol=1e-6)


def test_short_bursts_of_motion_such_as_sitting_down_teach_nothing() -> None:
    bent = np.array([0.5, 0.0, 1.0])
    stream = np.stack(([walking(bent)] * (SUSTAINED - 1) + [still([1.0, 0.0, 0.0])]) * 3)
    assert np.isnan(window_uprights(stream[:, :, :3], WindowSpec(channels=("ax", "ay", "az")))).all()
    half_hop = WindowSpec(hop_s=0.5)  # the rule is in seconds: twice the windows at half the hop
    assert np.isnan(window_uprights(np.stack([walking(bent)] * (2 * SUSTAINED - 1)), half_hop)).all()
    assert not np.isnan(window_uprights(np.stack([walking(bent)] * (2 * SUSTAINED + 1)), half_hop)[-1]).any()


def test_a_saved_tracker_continues_exactly() -> None:
    rng = np.random.default_rng(0)
    gravity = rng.normal(size=(40, 3))
    gravity /= np.linalg.norm(gravity, axis=1, keepdims=True)
    moving = rng.random(40) < 0.8
    whole = UprightTracker().references(gravity, moving, 1.0)
    first = UprightTracker()
    head = first.references(gravity[:17], moving[:17], 1.0)
    tail = UprightTracker.restore(first.state()).references(gravity[17:], moving[17:], 1.0)
    np.testing.assert_array_equal(np.vstack([head, tail]), whole)


def test_imu_stats_3_appends_the_four_tilt_columns_and_needs_the_stream_context() -> None:
    spec = WindowSpec(feature_set_version=IMU_STATS_3)
    stream = np.stack([walking([1.0, 0.0, 0.0])] * (SUSTAINED + 1) + [still([1.0, 0.0, 0.2])])
    got = featurize(stream, spec, window_contexts(stream, spec))
    names = feature_names_for(spec)
    assert got.shape == (len(stream), len(names)) and names[-4:] == [
        "upright_angle",
        "upright_dx",
        "upright_dy",
        "upright_dz",
    ]
    assert got[-1, -4] == pytest.approx(np.arctan(0.2), abs=1e-6)
    with pytest.raises(ValueError, match="needs one context row per window"):
        featurize(stream, spec)
