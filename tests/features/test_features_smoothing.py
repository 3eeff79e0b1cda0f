"""The forward filter against a direct computation, its causality, and the learned transitions."""

from __future__ import annotations

import numpy as np
import pytest

from features.smoothing import STAY_PRIOR, TRANSITION_PRIOR, TRANSITION_WEIGHT, ForwardFilter, learn_transitions
from features.spec import WindowSpec


def random_probabilities(n: int, n_classes: int, seed: int = 0) -> np.ndarray:
    raw = np.random.default_rng(seed).random((n, n_classes))
    return raw / raw.sum(axis=1, keepdims=True)


def direct_forward(probabilities: np.ndarray, transitions: np.ndarray, floor: float) -> np.ndarray:
    """The textbook recursion, one class at a time: alpha_t(j) ∝ e_t(j) * sum_i alpha_{t-1}(i) A[i, j]."""
    n, k = probabilities.shape
    out = np.zeros((n, k))
    for t in range(n):
        for j in range(k):
            emission = probabilities[t, j] + floor
            out[t, j] = emission if t == 0 else emission * sum(out[t - 1, i] * transitions[i, j] for i in range(k))
        out[t] /= out[t].sum()
    return out


def test_matches_the_textbook_recursion() -> None:
    transitions = learn_transitions([list("aabbbcca"), list("ccab")], ["a", "b", "c"])
    p = random_probabilities(30, 3)
    got = ForwardFilter(transitions, floor=0.05).run(p)
    np.testing.assert_allclose(got, direct_forward(p, transitions, 0.05), rtol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_is_causal_changing_later_windows_never_changes_earlier_outputs() -> None:
    forward = ForwardFilter.sticky(4, 0.9)
    p = random_probabilities(50, 4, seed=1)
    changed = p.copy()
    changed[20:] = random_probabilities(30, 4, seed=2)
    np.testing.assert_array_equal(forward.run(p)[:20], forward.run(changed)[:20])
    assert not np.allclose(forward.run(p)[20:], forward.run(changed)[20:])


def test_step_by_step_equals_the_whole_run() -> None:
    forward = ForwardFilter.sticky(3, 0.8)
    p = random_probabilities(12, 3, seed=3)
    belief = None
    for i, row in enumerate(p):
        belief = forward.step(belief, row)
        np.testing.assert_allclose(belief, forward.run(p)[i], rtol=1e-12)


def test_a_sticky_filter_outvotes_one_odd_window_and_follows_a_real_change() -> None:
    a, b = [0.9, 0.1], [0.1, 0.9]
    out = ForwardFilter.sticky(2, 0.9).run(np.array([a, a, a, b, a, a, b, b, b, b]))
    assert out.argmax(axis=1).tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]


def test_learned_transitions_count_consecutive_windows_with_the_priors() -> None:
    got = learn_transitions([["sit", "sit", "stand"], ["stand", "stand"]], ["sit", "stand"])
    counts = np.array([[1.0, 1.0], [0.0, 1.0]]) + TRANSITION_PRIOR + np.eye(2) * STAY_PRIOR
    learned = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, TRANSITION_WEIGHT * learned + (1 - TRANSITION_WEIGHT) / 2)


def test_a_model_spec_carries_its_filter_and_old_specs_get_a_sticky_default() -> None:
    transitions = ((0.7, 0.3), (0.2, 0.8))
    spec = WindowSpec(classes=("a", "b"), transitions=transitions)
    np.testing.assert_array_equal(ForwardFilter.for_spec(spec).transitions, np.array(transitions))
    assert WindowSpec.from_dict(spec.to_dict()) == spec
    old = ForwardFilter.for_spec(WindowSpec(classes=("a", "b", "c")))
    np.testing.assert_allclose(old.transitions.sum(axis=1), 1.0)
    assert old.transitions[0, 0] == pytest.approx(0.9)


def test_refuses_rows_of_the_wrong_width() -> None:
    with pytest.raises(ValueError, match="probabilities must be"):
        ForwardFilter.sticky(3).run(np.ones((4, 2)))
