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

import numpy as np

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


@dataclass
class LastPostureTracker:
    """One stream's recent still postures (unit gravity directions) and its current still run."""

    postures: list[list[float]] = field(default_factory=list)  # completed still stretches, newest last
    run_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))  # gravity summed over the current still run
    run_windows: int = 0

    def references(self, gravity: np.ndarray, spread: np.ndarray, hop_s: float) -> np.ndarray:
        """The posture each window came from (n, 3) unit rows, NaN when none is known; then the
        windows update the tracker. ``gravity`` (n, 3) unit rows, ``spread`` (n,) the std of each
        window's acceleration magnitude, ``hop_s`` the time from one window to the next."""
        min_run = max(1, math.ceil(MIN_STILL_S / hop_s - 1e-9))
        change = math.cos(math.radians(CHANGE_MIN_DEG))
        out = np.full((len(gravity), 3), np.nan)
        for i in range(len(gravity)):
            for posture in reversed(self.postures):
                if posture[0] * gravity[i, 0] + posture[1] * gravity[i, 1] + posture[2] * gravity[i, 2] < change:
                    out[i] = posture
                    break
            if spread[i] < STILL_STD:
                self.run_sum = self.run_sum + gravity[i]
                self.run_windows += 1
            else:
                self._end_run(min_run)
        return out

    def _end_run(self, min_run: int) -> None:
        norm = float(np.sqrt(self.run_sum @ self.run_sum))
        if self.run_windows >= min_run and norm > 0:
            self.postures = [*self.postures, (self.run_sum / norm).tolist()][-REMEMBERED:]
        self.run_sum, self.run_windows = np.zeros(3), 0

    def state(self) -> dict[str, object]:
        return {"postures": self.postures, "run_sum": self.run_sum.tolist(), "run_windows": self.run_windows}

    @classmethod
    def restore(cls, state: dict[str, object]) -> "LastPostureTracker":
        postures = [[float(v) for v in p] for p in state["postures"]]  # type: ignore[attr-defined]
        run_sum = np.asarray(state["run_sum"], dtype=np.float64)
        return cls(postures, run_sum, int(state["run_windows"]))  # type: ignore[call-overload]
