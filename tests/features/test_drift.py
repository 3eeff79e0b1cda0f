"""PSI and Jensen-Shannon against hand computations; the reference profile and live scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from features.drift import PSI_FLOOR, binned, js_distance, psi
from features.drift_profile import DriftProfile, DriftProfileError, build_profile, quantile_edges, score_window


def test_binned_counts_each_value_once_with_right_closed_bins() -> None:
    # bins (-inf, 1], (1, 3], (3, inf); NaN and inf are left out.
    shares = binned(np.array([0.0, 1.0, 2.0, 3.0, 5.0, np.nan, np.inf]), np.array([1.0, 3.0]))
    assert shares.tolist() == [2 / 5, 2 / 5, 1 / 5]
    assert binned(np.array([np.nan]), np.array([1.0])).tolist() == [0.0, 0.0]


def test_psi_by_hand() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5) = 0.235115 + 0.643775
    assert psi([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.878890, abs=1e-6)
    assert psi([0.25, 0.25, 0.5], [0.25, 0.25, 0.5]) == 0.0
    # An empty reference bin is floored: (0.5 - 1) ln(0.5) + (0.5 - 1e-4) ln(0.5 / 1e-4)
    expected = -0.5 * math.log(0.5) + (0.5 - PSI_FLOOR) * math.log(0.5 / PSI_FLOOR)
    assert psi([1.0, 0.0], [0.5, 0.5]) == pytest.approx(expected)
    assert expected == pytest.approx(4.604319, abs=1e-6)


def test_js_distance_by_hand_and_against_scipy() -> None:
    # m = (0.75, 0.25); KL(p||m) = log2(4/3) = 0.415037; KL(q||m) = 0.5 log2(2/3) + 0.5 = 0.207519
    assert js_distance([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.sqrt((0.415037 + 0.207519) / 2), abs=1e-6)
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert js_distance([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    rng = np.random.default_rng(3)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        assert js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)


def test_quantile_edges_cut_equal_shares_and_merge_repeats() -> None:
    values = np.arange(1000, dtype=float)
    edges = quantile_edges(values, 10)
    assert len(edges) == 9
    assert np.allclose(binned(values, edges), 0.1, atol=0.002)
    assert quantile_edges(np.full(50, 2.0), 10).tolist() == [2.0]


def make_profile(rng: np.random.Generator) -> tuple[DriftProfile, np.ndarray]:
    features = rng.normal(size=(2000, 5))
    importances = np.array([0.1, 0.5, 0.0, 0.3, 0.1])
    labels = np.array(["a", "b", "b", "c"] * 500)
    confidence = rng.uniform(0.6, 1.0, size=2000)
    return build_profile(features, importances, list("vwxyz"), labels, ["a", "b", "c"], confidence, top=3), features


def test_profile_tracks_the_most_important_features_and_round_trips() -> None:
    profile, _ = make_profile(np.random.default_rng(0))
    assert [(f.name, f.column) for f in profile.features] == [("w", 1), ("y", 3), ("v", 0)]
    assert profile.class_prior.tolist() == [0.25, 0.5, 0.25]
    assert profile.mean_confidence == pytest.approx(0.8, abs=0.01)
    again = DriftProfile.from_dict(profile.to_dict())
    assert again.to_dict() == profile.to_dict()
    with pytest.raises(DriftProfileError, match="format"):
        DriftProfile.from_dict({**profile.to_dict(), "format": 99})
    with pytest.raises(DriftProfileError, match="retrain"):
        DriftProfile.from_dict({"format": 1, "features": []})


def test_scores_of_the_reference_itself_are_small_and_of_a_shift_large() -> None:
    rng = np.random.default_rng(1)
    profile, features = make_profile(rng)
    probabilities = np.tile([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], (500, 1))
    same = score_window(profile, features[:, profile.columns], probabilities)
    assert max(same.feature_psi.values()) < 0.01
    assert same.prediction_js == pytest.approx(0.0, abs=1e-9)
    assert same.confidence_drop == pytest.approx(profile.mean_confidence - 0.8)
    shifted = features[:, profile.columns] + 1.0  # one standard deviation
    moved = score_window(profile, shifted, np.tile([[0.4, 0.3, 0.3]], (2000, 1)))
    assert min(moved.feature_psi.values()) > 0.5
    assert moved.prediction_js == pytest.approx(js_distance([0.25, 0.5, 0.25], [1.0, 0.0, 0.0]))
    assert moved.confidence_drop == pytest.approx(profile.mean_confidence - 0.4)
