"""Sanity checks that the synthetic IMU is physically sensible and learnable across subjects."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from features.contract import ACC_CHANNELS, ALL_CHANNELS, GYRO_CHANNELS, STANDARD_GRAVITY
from features.errors import DataError
from pipelines.synthetic import POSTURES, SimulatedIMU, SubjectProfile, generate_sample_dataset, generate_segment

RATE = 50.0


@pytest.fixture(scope="module")
def dataset() -> pd.DataFrame:
    return generate_sample_dataset()


def _single(frame: pd.DataFrame, posture: str) -> dict[str, pd.DataFrame]:
    """Per subject, the recording that holds ``posture`` throughout."""
    part = frame[frame["recording"].str.endswith(f"-{posture}")]
    return {subject: rec for subject, rec in part.groupby("subject")}


def _acc_norm(rec: pd.DataFrame) -> np.ndarray:
    return np.linalg.norm(rec[list(ACC_CHANNELS)].to_numpy(), axis=1)


def _dominant_hz(x: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(x - x.mean()))
    freqs = np.fft.rfftfreq(x.size, 1.0 / RATE)
    power[freqs < 0.5] = 0.0
    return float(freqs[power.argmax()])


@pytest.mark.parametrize("posture", ["sitting", "standing", "lying"])
def test_static_acceleration_is_gravity(dataset: pd.DataFrame, posture: str) -> None:
    for rec in _single(dataset, posture).values():
        assert np.median(_acc_norm(rec)) == pytest.approx(STANDARD_GRAVITY, rel=0.03)


def test_gravity_direction_separates_static_postures(dataset: pd.DataFrame) -> None:
    for subject in _single(dataset, "sitting"):
        up = {}
        for posture in ("sitting", "standing", "lying"):
            mean = _single(dataset, posture)[subject][list(ACC_CHANNELS)].to_numpy().mean(axis=0)
            up[posture] = mean / np.linalg.norm(mean)
        # standing: along y (thigh); sitting: along x (thigh horizontal); lying on a side: along z
        assert np.argmax(np.abs(up["standing"])) == 1
        assert np.argmax(np.abs(up["sitting"])) == 0
        assert np.argmax(np.abs(up["lying"])) == 2
        for a, b in [("sitting", "standing"), ("sitting", "lying"), ("standing", "lying")]:
            angle = np.degrees(np.arccos(np.clip(up[a] @ up[b], -1, 1)))
            assert angle > 45, (subject, a, b, angle)


def test_gait_frequency_and_intensity(dataset: pd.DataFrame) -> None:
    walking, running = _single(dataset, "walking"), _single(dataset, "running")
    for subject in walking:
        walk, run = _acc_norm(walking[subject]), _acc_norm(running[subject])
        walk_hz, run_hz = _dominant_hz(walk), _dominant_hz(run)
        assert 1.6 <= walk_hz <= 2.1, (subject, walk_hz)
        assert 2.5 <= run_hz <= 3.2 and run_hz > walk_hz, (subject, run_hz)
        assert run.std() > 2 * walk.std() > 2 * 0.5


def test_gyro_small_at_rest_and_large_in_motion(dataset: pd.DataFrame) -> None:
    def median_rate(posture: str) -> float:
        rec = dataset[dataset["recording"].str.endswith(f"-{posture}")]
        return float(np.median(np.linalg.norm(rec[list(GYRO_CHANNELS)].to_numpy(), axis=1)))

    for posture in ("sitting", "standing", "lying"):
        assert median_rate(posture) < 0.15
    assert median_rate("walking") > 0.8
    assert median_rate("running") > 1.5 * median_rate("walking")


@pytest.mark.parametrize("posture", ["lying", "sitting", "walking"])
def test_gyro_agrees_with_gravity_rotation(posture: str) -> None:
    quiet = dataclasses.replace(
        SubjectProfile.random(np.random.default_rng(2), "x"),
        acc_noise=0.0,
        gyro_noise=0.0,
        gyro_bias=(0.0, 0.0, 0.0),
        lever_m=0.0,
        walk_bounce=0.0,
    )
    x = generate_segment(posture, quiet, 60.0, 200.0, np.random.default_rng(0))
    acc, gyro = x[:, :3], x[:, 3:]
    # in a rotating frame gravity turns as dg/dt = -omega x g (the hip's own jerk is small here)
    turning = np.gradient(acc, 1 / 200.0, axis=0)
    assert np.corrcoef(turning.ravel(), -np.cross(gyro, acc).ravel())[0, 1] > 0.9


def test_dataset_layout(dataset: pd.DataFrame) -> None:
    assert list(dataset.columns) == ["timestamp", *ALL_CHANNELS, "label", "subject", "recording"]
    assert set(dataset["label"]) == set(POSTURES)
    assert sorted(dataset["subject"].unique()) == [f"s{i:02d}" for i in range(1, 9)]
    names = {f"s01-{p}" for p in POSTURES} | {"s01-mixed-1", "s01-mixed-2"}
    assert set(dataset.loc[dataset["subject"] == "s01", "recording"]) == names
    assert not dataset[list(ALL_CHANNELS)].isna().any().any()
    for name, rec in dataset.groupby("recording"):
        t = rec["timestamp"].to_numpy()
        assert t[0] == 0.0 and np.allclose(np.diff(t), 1 / RATE), name
    walking = dataset[dataset["recording"] == "s01-walking"]
    assert len(walking) == 60 * RATE and set(walking["label"]) == {"walking"}


def test_mixed_recording_changes_label_in_order(dataset: pd.DataFrame) -> None:
    labels = dataset.loc[dataset["recording"] == "s03-mixed-1", "label"].to_numpy()
    runs = [labels[0]] + [b for a, b in zip(labels[:-1], labels[1:]) if a != b]
    assert runs == ["sitting", "standing", "walking", "standing"]
    change = int(np.flatnonzero(labels[1:] != labels[:-1])[0]) + 1
    assert 30 * RATE < change < 33 * RATE  # labelled mid-transition, after the planned switch at 30 s


def test_deterministic_per_seed() -> None:
    small = {"n_subjects": 2, "seconds_per_posture": 6.0}
    first = generate_sample_dataset(seed=3, **small)
    pd.testing.assert_frame_equal(first, generate_sample_dataset(seed=3, **small))
    other = generate_sample_dataset(seed=4, **small)
    assert not np.allclose(first[list(ALL_CHANNELS)].to_numpy(), other[list(ALL_CHANNELS)].to_numpy())

    profile = SubjectProfile.random(np.random.default_rng(1), "x")
    a = generate_segment("walking", profile, 4.0, RATE, np.random.default_rng(7))
    b = generate_segment("walking", profile, 4.0, RATE, np.random.default_rng(7))
    assert a.shape == (200, 6) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, generate_segment("walking", profile, 4.0, RATE, np.random.default_rng(8)))


def test_subject_profiles_vary() -> None:
    rng = np.random.default_rng(0)
    a, b = SubjectProfile.random(rng, "a"), SubjectProfile.random(rng, "b")
    assert a.walk_step_hz != b.walk_step_hz and a.mount_rad != b.mount_rad
    tilt = np.degrees(np.linalg.norm(a.mount_rad))
    assert 3 <= tilt <= 15


def test_unknown_posture_is_a_data_error() -> None:
    profile = SubjectProfile.random(np.random.default_rng(0), "x")
    with pytest.raises(DataError, match="sitting, standing, lying, walking, running"):
        generate_segment("jumping", profile, 1.0, RATE, np.random.default_rng(0))
    with pytest.raises(DataError, match="jumping"):
        SimulatedIMU(schedule=["walking", "jumping"])


def test_simulator_reads_continue_seamlessly() -> None:
    split = SimulatedIMU(seed=5, seconds_per_posture=1.5)
    whole = SimulatedIMU(seed=5, seconds_per_posture=1.5)
    x1, l1 = split.read(50)
    x2, l2 = split.read(50)
    x, labels = whole.read(100)
    np.testing.assert_array_equal(np.vstack([x1, x2]), x)
    assert l1 + l2 == labels
    # posture changes are movements, not jumps: at rest the signal never leaps between samples
    stream, labels = SimulatedIMU(schedule=["sitting", "standing", "lying"], seconds_per_posture=3.0, seed=1).read(900)
    assert len(set(labels)) == 3
    assert np.abs(np.diff(stream[:, :3], axis=0)).max() < 2.0


def test_simulator_cycles_through_schedule() -> None:
    sim = SimulatedIMU(schedule=("walking", "sitting"), seconds_per_posture=4.0, seed=0)
    assert sim.current_posture == "walking"
    data, labels = sim.read(int(2 * 2 * 4.0 * RATE) + 100)
    assert data.shape == (len(labels), 6)
    runs = [labels[0]] + [b for a, b in zip(labels[:-1], labels[1:]) if a != b]
    assert runs == ["walking", "sitting", "walking", "sitting", "walking"]
    assert sim.current_posture == "walking"


def test_classes_learnable_across_subjects(dataset: pd.DataFrame) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import GroupKFold, cross_val_score

    features, labels, groups = [], [], []
    for posture in POSTURES:
        for subject, rec in _single(dataset, posture).items():
            x = rec[list(ALL_CHANNELS)].to_numpy()
            x = np.hstack(
                [x, np.linalg.norm(x[:, :3], axis=1, keepdims=True), np.linalg.norm(x[:, 3:], axis=1, keepdims=True)]
            )
            windows = np.lib.stride_tricks.sliding_window_view(x, 100, axis=0)[::50]  # 2 s windows, 1 s hop
            features.append(np.hstack([windows.mean(axis=2), windows.std(axis=2)]))
            labels += [posture] * len(windows)
            groups += [subject] * len(windows)
    forest = RandomForestClassifier(n_estimators=100, random_state=0)
    scores = cross_val_score(forest, np.vstack(features), labels, groups=groups, cv=GroupKFold(n_splits=4))
    print(f"group-CV accuracy by fold: {np.round(scores, 3)}, mean {scores.mean():.3f}")
    assert scores.mean() > 0.85
