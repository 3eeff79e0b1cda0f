"""Resampling onto a fixed-rate grid: exact on linear signals, split at gaps, labels carried."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.resample import resample_uniform
from pipelines.recording import Recording, RejectedRows
from pipelines.resampling import resample_recording


def test_linear_signal_stays_exact_on_irregular_input() -> None:
    rng = np.random.default_rng(0)
    t = np.concatenate(([0.3], np.sort(rng.uniform(0.3, 2.3, 80)), [2.3]))
    t = np.unique(t)
    values = np.column_stack([3 * t + 1, -2 * t])
    [(new_t, new_values, _)] = resample_uniform(t, values, rate_hz=50, max_gap_s=0.5)
    np.testing.assert_allclose(np.diff(new_t), 0.02)
    assert new_t[0] == 0.3 and new_t[-1] == pytest.approx(2.3)
    np.testing.assert_allclose(new_values, np.column_stack([3 * new_t + 1, -2 * new_t]), atol=1e-9)


def test_grid_ends_on_last_sample_when_duration_fits() -> None:
    [(new_t, new_values, previous)] = resample_uniform(np.array([0.0, 1.0]), np.array([[0.0], [10.0]]), 10, 2.0)
    assert len(new_t) == 11
    np.testing.assert_allclose(new_values[:, 0], np.arange(11.0), atol=1e-12)
    assert previous.tolist() == [0] * 10 + [1]


def test_previous_index_points_at_last_sample_at_or_before() -> None:
    t = np.array([0.0, 0.1, 0.25, 0.3])
    [(new_t, _, previous)] = resample_uniform(t, np.zeros((4, 1)), rate_hz=20, max_gap_s=1.0)
    np.testing.assert_allclose(new_t, [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    assert previous.tolist() == [0, 0, 1, 1, 1, 2, 3]


def test_gap_longer_than_threshold_splits_into_segments() -> None:
    t = np.concatenate((np.arange(0, 1.01, 0.1), np.arange(2.0, 3.01, 0.1)))
    values = t[:, None] * 2
    segments = resample_uniform(t, values, rate_hz=10, max_gap_s=0.5)
    assert len(segments) == 2
    first, second = segments
    assert first[0][-1] == pytest.approx(1.0) and second[0][0] == pytest.approx(2.0)
    assert second[2][0] == 11  # indices point into the full input
    np.testing.assert_allclose(second[1][:, 0], second[0] * 2, atol=1e-9)
    assert len(resample_uniform(t, values, rate_hz=10, max_gap_s=1.5)) == 1


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        resample_uniform(np.array([0.0, 0.2, 0.1]), np.zeros((3, 1)), 50, 0.5)
    with pytest.raises(ValueError, match="values"):
        resample_uniform(np.array([0.0, 0.1]), np.zeros(2), 50, 0.5)
    with pytest.raises(ValueError, match="positive"):
        resample_uniform(np.array([0.0, 0.1]), np.zeros((2, 1)), 0, 0.5)
    assert resample_uniform(np.array([]), np.zeros((0, 3)), 50, 0.5) == []


def _recording(t: np.ndarray, labels: list[str]) -> Recording:
    frame = pd.DataFrame({"timestamp": t, "ax": t, "ay": 0.0, "az": 9.8, "label": labels, "subject": "s1"})
    return Recording("walk", frame, "walk.csv", [RejectedRows("duplicate timestamp", 1, [4])])


def test_resample_recording_carries_labels_by_previous_sample() -> None:
    t = np.arange(0, 2.01, 0.1)
    labels = ["sit" if x < 1.0 - 1e-9 else "stand" for x in t]
    [rec] = resample_recording(_recording(t, labels), rate_hz=50, max_gap_s=0.5)
    frame = rec.frame
    assert rec.name == "walk" and list(frame.columns) == ["timestamp", "ax", "ay", "az", "label", "subject"]
    assert len(frame) == 101
    assert set(frame.loc[frame.timestamp < 0.999, "label"]) == {"sit"}
    assert set(frame.loc[frame.timestamp > 1.001, "label"]) == {"stand"}
    assert set(frame.subject) == {"s1"} and rec.rejected[0].reason == "duplicate timestamp"
    np.testing.assert_allclose(frame.ax, frame.timestamp, atol=1e-9)


def test_resample_recording_names_segments_and_reports_rejected_once() -> None:
    t = np.concatenate((np.arange(0, 1.01, 0.1), np.arange(3.0, 4.01, 0.1)))
    segments = resample_recording(_recording(t, ["a"] * 11 + ["b"] * 11), rate_hz=10, max_gap_s=0.5)
    assert [s.name for s in segments] == ["walk#1", "walk#2"]
    assert [set(s.frame.label) for s in segments] == [{"a"}, {"b"}]
    assert len(segments[0].rejected) == 1 and segments[1].rejected == []
