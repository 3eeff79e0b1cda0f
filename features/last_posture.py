"""The posture the wearer came from, tracked causally over a stream.

To a waist or pocket phone, sitting and standing differ only by a tilt. Within one person
the two are far apart: their mean gravity directions differ by 9-43 degrees (UCI HAPT's 21
users, median ~22), but phones sit at their own angle on each person, so across people the
absolute direction overlaps. What a person does not change is the direction of the move:
sitting down tilts the pelvis back, standing up tilts it forward, lying down turns it 90
degrees. ``LastPostureTracker`` remembers the gravity directions of the recent still
stretches (runs of still windows that ended when the wearer moved) and gives each window the
most recent one that differs from its own gravity by more than ``CHANGE_MIN_DEG``: the
posture it came from, in the phone's axes. Like ``features.upright`` it only looks back, so
a file and a live stream agree.

``features.feature_sets`` (``imu-stats-4``) turns a window's gravity and that direction into
the angle between them and their difference vector. Measured leave-one-subject-out on the
21 UCI HAPT users with the rotated training copies (bench/bench_quality.py): window accuracy
0.948 -> 0.967, sitting taken for standing and back 372 -> 192 windows. The stillness
threshold is the sensitive setting (5-fold by subject, an early version that saw only the
labelled windows: 0.07 m/s^2 0.955, 0.1 0.958, 0.15 0.955, 0.3 0.947); the others are flat
(a still stretch of 1, 2 or 4 windows: 0.956-0.958; a change of 5 or 8 degrees: 0.958).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from features.context_kernel import last_posture_references

# A window is still when the std of its acceleration magnitude is below this (m/s^2): a phone
# at rest reads ~0.03 (sensor noise), sitting or standing mostly below 0.1, walking 1.5-4.
STILL_STD = 0.1
# A still stretch counts once it lasted this long: a pause between two moves is no posture.
MIN_STILL_S = 2.0
# The posture a window came from differs from its own gravity by more than this: fidgeting
# splits one posture into several still stretches, all within a few degrees.
CHANGE_MIN_DEG = 5.0
# Still stretches remembered, newest last.
REMEMBERED = 8
POSTURE_CHANGE_FEATURE_NAMES = ("posture_change_angle", "posture_change_dx", "posture_change_dy", "posture_change_dz")
CHANGE_COS = math.cos(math.radians(CHANGE_MIN_DEG))  # a posture differs when its cosine to gravity is below


@dataclass
class LastPostureTracker:
    """One stream's recent still postures (unit gravity directions) and its current still run,
    in arrays that ``features.context_kernel`` updates in place."""

    # Completed still stretches in the first counts[0] rows, oldest first.
    recent: np.ndarray = field(default_factory=lambda: np.zeros((REMEMBERED, 3)))
    run_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))  # gravity summed over the current still run
    # The postures remembered, and the windows in the current still run.
    counts: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.int64))

    @property
    def postures(self) -> list[list[float]]:
        """The remembered still postures, newest last."""
        return self.recent[: self.counts[0]].tolist()

    def references(self, gravity: np.ndarray, spread: np.ndarray, hop_s: float) -> np.ndarray:
        """The posture each window came from (n, 3) unit rows, NaN when none is known; then the
        windows update the tracker. ``gravity`` (n, 3) unit rows, ``spread`` (n,) the std of each
        window's acceleration magnitude, ``hop_s`` the time from one window to the next."""
        gravity, still = np.asarray(gravity, dtype=np.float64), np.asarray(spread) < STILL_STD
        args = (min_still_windows(hop_s), CHANGE_COS, self.recent, self.run_sum, self.counts)
        return last_posture_references(gravity, still, *args)

    def state(self) -> dict[str, object]:
        return {"postures": self.postures, "run_sum": self.run_sum.tolist(), "run_windows": int(self.counts[1])}

    @classmethod
    def restore(cls, state: dict[str, object]) -> "LastPostureTracker":
        postures = np.array(state["postures"], dtype=np.float64).reshape(-1, 3)[-REMEMBERED:]
        recent = np.zeros((REMEMBERED, 3))
        recent[: len(postures)] = postures
        run_sum = np.array(state["run_sum"], dtype=np.float64)
        return cls(recent, run_sum, np.array([len(postures), state["run_windows"]], dtype=np.int64))


@lru_cache(maxsize=16)
def min_still_windows(hop_s: float) -> int:
    """``MIN_STILL_S`` in windows ``hop_s`` apart."""
    return max(1, math.ceil(MIN_STILL_S / hop_s - 1e-9))
