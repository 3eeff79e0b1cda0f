"""causal_mean_smoothing against a direct loop."""

from __future__ import annotations

import numpy as np
import pytest

from features.smoothing import causal_mean_smoothing


def naive_smoothing(probabilities: np.ndarray, k: int) -> np.ndarray:
    return np.array([probabilities[max(0, i - k + 1) : i + 1].mean(axis=0) for i in range(len(probabilities))])


def random_probabilities(n: int, n_classes: int, seed: int = 0) -> np.ndarray:
    raw = np.random.default_rng(seed).random((n, n_classes))
    return raw / raw.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 3, 5, 17, 50])
def test_matches_direct_loop(k: int) -> None:
    p = random_probabilities(40, 4)
    np.testing.assert_allclose(causal_mean_smoothing(p, k), naive_smoothing(p, k), rtol=0, atol=1e-12)


def test_hand_computed_values() -> None:
    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    expected = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.5, 0.5]])
    np.testing.assert_allclose(causal_mean_smoothing(p, 2), expected)


@pytest.mark.parametrize("k", [1, 0, -3])
def test_k_at_most_one_returns_input_unchanged(k: int) -> None:
    p = random_probabilities(10, 3)
    out = causal_mean_smoothing(p, k)
    assert out is p


def test_is_causal() -> None:
    p = random_probabilities(30, 3)
    changed = p.copy()
    changed[20:] = random_probabilities(10, 3, seed=1)
    np.testing.assert_array_equal(causal_mean_smoothing(p, 5)[:20], causal_mean_smoothing(changed, 5)[:20])


def test_rows_still_sum_to_one_and_shape_kept() -> None:
    p = random_probabilities(25, 5)
    out = causal_mean_smoothing(p, 4)
    assert out.shape == p.shape
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


def test_k_longer_than_sequence_is_running_mean() -> None:
    p = random_probabilities(6, 2)
    expected = np.cumsum(p, axis=0) / np.arange(1, 7)[:, None]
    np.testing.assert_allclose(causal_mean_smoothing(p, 100), expected)


def test_empty_input() -> None:
    assert causal_mean_smoothing(np.empty((0, 3)), 5).shape == (0, 3)


def test_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match="2-D"):
        causal_mean_smoothing(np.ones(5), 3)
