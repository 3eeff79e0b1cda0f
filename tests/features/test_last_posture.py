"""The posture a wearer came from (features.last_posture) and imu-stats-4, on hand-made streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.augment import random_rotation, rotate_stream
from features.contract import ALL_CHANNELS
from features.feature_sets import IMU_STATS_3, IMU_STATS_4, feature_names_for, featurize, window_contexts
from features.last_posture import CHANGE_MIN_DEG, MIN_STILL_S, REMEMBERED, STILL_STD, LastPostureTracker
from features.spec import WindowSpec
from features.stream_context import CONTEXT_COLUMNS, LAST_POSTURE, UPRIGHT, StreamContext

T = np.arange(100) / 50.0
SPEC = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0, feature_set_version=IMU_STATS_4)
MIN_RUN = int(MIN_STILL_S / SPEC.hop_s)  # still windows in a row before a still stretch counts
STANDING = np.array([1.0, 0.0, 0.0])
SITTING = np.array([math.cos(0.35), 0.0, math.sin(0.35)])  # the pelvis tilted back by 20 degrees


def still(up: np.ndarray, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A 2 s window whose gravity points along ``up``, with white noise of std ``noise`` (m/s^2)."""
    acc = np.tile(9.8 * up / np.linalg.norm(up), (100, 1))
    acc += np.random.default_rng(seed).normal(scale=noise, size=acc.shape) if noise else 0.0
    return np.hstack([acc, np.zeros((100, 3))]).astype(np.float32)


def moving(up: np.ndarray) -> np.ndarray:
    """A 2 s window of a move (sitting down, standing up): 2 m/s^2 at 1 Hz along ``up``."""
    window = still(up)
    window[:, :3] += (2.0 * np.sin(2 * np.pi * T))[:, None] * up / np.linalg.norm(up)
    return window


def last_postures(stream: list[np.ndarray], spec: WindowSpec = SPEC) -> np.ndarray:
    return window_contexts(np.stack(stream), spec)[:, LAST_POSTURE]


def test_a_window_sees_the_still_posture_before_the_last_move() -> None:
    stream = [still(STANDING)] * 4 + [moving(STANDING)] * 3 + [still(SITTING)] * 4
    got = last_postures(stream)
    assert np.isnan(got[:7]).all()  # the standing stretch is no other posture than its own
    np.testing.assert_allclose(got[7:], np.tile(STANDING, (4, 1)), atol=1e-6)  # sitting came from standing


def test_features_are_the_tilt_from_the_last_posture_and_zero_when_none() -> None:
    stream = np.stack([still(STANDING)] * 4 + [moving(STANDING)] * 3 + [still(SITTING)] * 4)
    got = featurize(stream, SPEC, window_contexts(stream, SPEC))
    names = feature_names_for(SPEC)
    assert got.shape == (len(stream), len(names))
    assert names[-4:] == ["posture_change_angle", "posture_change_dx", "posture_change_dy", "posture_change_dz"]
    assert names[:-4] == feature_names_for(WindowSpec(feature_set_version=IMU_STATS_3))
    assert (got[:7, -4:] == 0.0).all()
    np.testing.assert_allclose(got[-1, -4:], [0.35, *(SITTING - STANDING)], atol=1e-5)


def test_fidgeting_in_one_posture_is_not_a_posture_change() -> None:
    nudged = STANDING + np.array([0.0, math.tan(math.radians(CHANGE_MIN_DEG / 2)), 0.0])
    stream = [still(SITTING)] * 3 + [moving(SITTING)] * 2 + [still(STANDING)] * 3
    stream += ([moving(STANDING)] + [still(nudged)] * 3) * 3  # shifting weight while standing
    got = last_postures(stream)
    np.testing.assert_allclose(got[5:], np.tile(SITTING, (len(stream) - 5, 1)), atol=1e-6)


def test_a_short_pause_or_a_noisy_window_is_no_posture() -> None:
    pause = [moving(STANDING)] + [still(SITTING)] * (MIN_RUN - 1) + [moving(STANDING)] + [still(STANDING)] * 2
    assert np.isnan(last_postures(pause)).all()
    noisy = [still(SITTING, noise=2 * STILL_STD, seed=k) for k in range(4)] + [moving(SITTING)] + [still(STANDING)] * 2
    assert np.isnan(last_postures(noisy)).all()
    half_hop = WindowSpec(hop_s=0.5, feature_set_version=IMU_STATS_4)  # the rule is in seconds
    assert np.isnan(
        last_postures([still(SITTING)] * (2 * MIN_RUN - 1) + [moving(SITTING), still(STANDING)], half_hop)
    ).all()
    got = last_postures([still(SITTING)] * (2 * MIN_RUN) + [moving(SITTING), still(STANDING)], half_hop)
    np.testing.assert_allclose(got[-1], SITTING, atol=1e-6)


def test_the_newest_different_posture_wins_and_the_oldest_are_forgotten() -> None:
    laying = np.array([0.0, 0.0, 1.0])
    stream = [still(laying)] * 3 + [moving(laying)] + [still(SITTING)] * 3 + [moving(SITTING)] + [still(STANDING)] * 2
    np.testing.assert_allclose(last_postures(stream)[-1], SITTING, atol=1e-6)
    tracker = LastPostureTracker()
    directions = [np.array([math.cos(a), math.sin(a), 0.0]) for a in np.linspace(0, 3, 20)]
    for direction in directions:  # 20 still stretches of one window, MIN_STILL_S long, each ended by a move
        tracker.references(direction[None], np.array([0.0]), MIN_STILL_S)
        tracker.references(direction[None], np.array([10 * STILL_STD]), MIN_STILL_S)
    np.testing.assert_allclose(tracker.postures, directions[-REMEMBERED:], atol=1e-12)


def test_the_context_is_causal_and_a_saved_context_continues_exactly() -> None:
    rng = np.random.default_rng(1)
    ups = [STANDING, SITTING, np.array([0.0, 0.3, 1.0])]
    stream = np.stack([moving(ups[k % 3]) if rng.random() < 0.3 else still(ups[k % 3]) for k in rng.integers(0, 3, 60)])
    whole = window_contexts(stream, SPEC)
    assert whole.shape == (60, CONTEXT_COLUMNS)
    changed = stream.copy()
    changed[40:] = still(STANDING)
    np.testing.assert_array_equal(
        window_contexts(changed, SPEC)[:41], whole[:41]
    )  # the future changes nothing before it
    first = StreamContext()
    head = window_contexts(stream[:23], SPEC, first)
    tail = window_contexts(stream[23:], SPEC, StreamContext.restore(first.state()))
    np.testing.assert_array_equal(np.vstack([head, tail]), whole)


def test_a_rotated_phone_sees_the_rotated_context() -> None:
    stream = np.stack([still(STANDING)] * 4 + [moving(STANDING)] * 3 + [still(SITTING)] * 4)
    contexts = window_contexts(stream, SPEC)
    rotation = random_rotation(np.random.default_rng(3))
    turned_windows, turned_contexts = rotate_stream(stream, contexts, ALL_CHANNELS, rotation)
    recomputed = window_contexts(turned_windows, SPEC)
    np.testing.assert_allclose(turned_contexts[:, LAST_POSTURE], recomputed[:, LAST_POSTURE], atol=1e-5)
    np.testing.assert_array_equal(np.isnan(turned_contexts[:, UPRIGHT]), np.isnan(recomputed[:, UPRIGHT]))


def test_imu_stats_4_needs_the_stream_context() -> None:
    with pytest.raises(ValueError, match="imu-stats-4 needs one context row per window"):
        featurize(np.stack([still(STANDING)]), SPEC)
