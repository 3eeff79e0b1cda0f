"""Causal smoothing of per-window class probabilities: a forward (HMM) filter.

``ForwardFilter`` treats the classifier's probabilities as the emissions of a hidden
activity that changes by a sticky transition matrix learned from the training label
sequences (``learn_transitions``). Each window costs one (K x K) product: the belief
after window t is ``normalise((belief_{t-1} @ A) * (p_t + floor))``. It never looks
ahead, so ``posture predict --smooth`` on a file and the server's ``smoothed_*`` fields
on a live stream give the same rows. The floor keeps a class the forest gave 0 able to
take over once the wearer really changes activity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from features.kernel import pairwise_plan, planned_sum
from features.spec import WindowSpec

# Added to every emission before the product, so no class is ever ruled out for good.
EMISSION_FLOOR = 0.05
# Pseudo-counts added to every transition, and to every stay, before normalising.
TRANSITION_PRIOR = 1.0
STAY_PRIOR = 10.0
# The learned matrix is blended with a uniform one by this weight. Chosen on the
# leave-one-subject-out probabilities of the default pipeline (imu-stats-4) for the 21 UCI
# HAPT users: there bouts last 10-20 windows and most errors last a whole bout, so the
# learned matrix itself (stay ~0.93) lost a window or two at every change. Strict window
# accuracy 0.967; filtered with weight 1: 0.926, 0.75: 0.957, 0.5: 0.965, 0.25: 0.969 (flat
# for floors 0.02-0.1; weight 0 is no filter).
TRANSITION_WEIGHT = 0.25
# The self-transition of models that carry no learned matrix (trained before the filter).
DEFAULT_STAY = 0.9


@dataclass(frozen=True)
class ForwardFilter:
    """A causal HMM forward filter over rows of class probabilities (classes in model order)."""

    transitions: np.ndarray  # (K, K), row i: P(next class | class i); rows sum to 1
    floor: float = EMISSION_FLOOR

    @classmethod
    def for_spec(cls, spec: WindowSpec) -> "ForwardFilter":
        """The filter a model carries in its spec; a sticky default for models that carry none."""
        if spec.transitions:
            return cls(np.asarray(spec.transitions, dtype=np.float64))
        return cls.sticky(max(1, len(spec.classes)))

    @classmethod
    def sticky(cls, n_classes: int, stay: float = DEFAULT_STAY) -> "ForwardFilter":
        """A filter with the same chance ``stay`` of keeping any class, the rest spread evenly."""
        if n_classes == 1:
            return cls(np.ones((1, 1)))
        move = (1.0 - stay) / (n_classes - 1)
        return cls(np.full((n_classes, n_classes), move) + np.eye(n_classes) * (stay - move))

    def step(self, belief: np.ndarray | None, probabilities: np.ndarray) -> np.ndarray:
        """The belief after one more window; ``belief`` None starts a stream."""
        # numpy's product (OpenBLAS's gemv) keeps its own summation order; the rest is one compiled
        # call. np.dot: the same gemv as ``@``, with less overhead (0.55 against 0.9 µs).
        carried = None if belief is None else np.dot(belief, self.transitions)
        probabilities = np.asarray(probabilities, dtype=np.float64)
        return _weigh(carried, probabilities, self.floor, _sum_plan(len(probabilities)))

    def run(self, probabilities: np.ndarray) -> np.ndarray:
        """The belief after each window of (n_windows, K) ``probabilities``, in order."""
        probabilities = np.asarray(probabilities)
        if probabilities.ndim != 2 or probabilities.shape[1] != len(self.transitions):
            raise ValueError(
                f"probabilities must be (n_windows, {len(self.transitions)}), got shape {probabilities.shape}"
            )
        out = np.empty(probabilities.shape, dtype=np.float64)
        belief = None
        for i, row in enumerate(probabilities):
            belief = out[i] = self.step(belief, row)
        return out


@lru_cache(maxsize=16)
def _sum_plan(n_values: int) -> np.ndarray:
    """How numpy sums ``n_values`` (``features.kernel.pairwise_plan``), read-only: shared."""
    plan = pairwise_plan(n_values)
    plan.setflags(write=False)
    return plan


@njit(cache=True, nogil=True)
def _weigh(carried: np.ndarray | None, probabilities: np.ndarray, floor: float, plan: np.ndarray) -> np.ndarray:
    """``normalise(carried * (probabilities + floor))`` (no ``carried``: a stream's first window),
    uniform when that sums to 0 or NaN. Each value as numpy computed it (the sum by ``plan``), so
    bit for bit the numpy code this replaced; ``step`` 3.8 -> 2.1 µs a window (2026-12, K 6 or 12)."""
    prior = probabilities + floor
    if carried is not None:
        prior *= carried
    total = planned_sum(prior, plan, np.empty(len(plan)))
    if total > 0:
        prior /= total
        return prior
    return np.full(len(prior), 1.0 / len(prior))


def learn_transitions(sequences: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """Row-normalised counts of class i followed by class j in consecutive windows,
    blended with a uniform matrix (``TRANSITION_WEIGHT``).

    ``sequences`` are the window labels of each recording in time order. Pseudo-counts
    (``TRANSITION_PRIOR`` everywhere, ``STAY_PRIOR`` on the diagonal) keep every move possible.
    """
    index = {label: i for i, label in enumerate(classes)}
    counts = np.full((len(classes), len(classes)), TRANSITION_PRIOR) + np.eye(len(classes)) * STAY_PRIOR
    for sequence in sequences:
        codes = [index[label] for label in sequence]
        np.add.at(counts, (codes[:-1], codes[1:]), 1.0)
    learned = counts / counts.sum(axis=1, keepdims=True)
    return TRANSITION_WEIGHT * learned + (1.0 - TRANSITION_WEIGHT) / len(classes)
