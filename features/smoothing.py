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

import numpy as np
from numba import njit

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
        return _weigh(carried, np.asarray(probabilities, dtype=np.float64), self.floor)

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


@njit(cache=True, nogil=True)
def _weigh(carried: np.ndarray | None, probabilities: np.ndarray, floor: float) -> np.ndarray:
    """``normalise(carried * (probabilities + floor))`` (no ``carried``: a stream's first window),
    uniform when that sums to 0 or NaN. Each value as numpy computed it, so bit for bit the same
    as the numpy code this replaced; ``step`` 3.8 -> 1.9 µs a window (2026-12, 6 or 12 classes)."""
    prior = probabilities + floor
    if carried is not None:
        prior *= carried
    total = _pairwise_sum(prior)
    if total > 0:
        prior /= total
        return prior
    return np.full(len(prior), 1.0 / len(prior))


@njit(cache=True, nogil=True)
def _pairwise_sum(values: np.ndarray) -> float:
    """``values.sum()`` in numpy's order: numpy's pairwise_sum adds halves of a range over 128
    values (the left one a multiple of 8 long), left + right. A stack stands in for its
    recursion, which numba cannot cache."""
    if len(values) <= 128:
        return _block_sum(values, 0, len(values))
    todo = [(0, len(values), False)]  # (start, length, or True: add the last two sums)
    sums, done = np.empty(64), 0  # the sums of the ranges done and not yet added (one per halving)
    while todo:
        start, n, add = todo.pop()
        if add:
            done -= 1
            sums[done - 1] += sums[done]
        elif n <= 128:
            sums[done], done = _block_sum(values, start, n), done + 1
        else:
            half = n // 2 - (n // 2) % 8
            todo += [(0, 0, True), (start + half, n - half, False), (start, half, False)]
    return sums[0]


@njit(cache=True, nogil=True)
def _block_sum(values: np.ndarray, start: int, n: int) -> float:
    """numpy's pairwise_sum of at most 128 values: in order under 8, else 8 interleaved partial
    sums added in pairs, then the rest in order."""
    total = 0.0
    if n < 8:
        for i in range(start, start + n):
            total += values[i]
        return total
    partial = values[start : start + 8].copy()
    i = 8
    while i < n - n % 8:
        for k in range(8):
            partial[k] += values[start + i + k]
        i += 8
    total = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + (
        (partial[4] + partial[5]) + (partial[6] + partial[7])
    )
    for j in range(start + i, start + n):
        total += values[j]
    return total


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
