"""The wearer's upright, learned causally from their own walking.

A phone on a belt or in a pocket sits at its own angle on each person, so the gravity
direction a window sees says little by itself about the torso's tilt. While the wearer
walks or climbs, the torso is upright: the mean gravity direction of such windows is
this wearer's upright in the phone's axes. ``UprightTracker`` keeps that estimate over a
stream (a recording, or a live session), one window after another, and gives each window
the estimate from the windows *before* it, so a file and a live stream agree and nothing
looks ahead. Stairs tilt the torso forward, sitting tilts the pelvis back: both show as
an angle from the upright (``features.feature_sets``, ``imu-stats-3``).

``features.feature_sets`` turns a window's gravity and its upright into four columns: the angle
between them and their difference vector in the phone's axes (which way the torso tilts).
A window before any sustained motion has no upright yet: it counts as upright itself (all
four columns 0). A distinct "unknown" value scored lower (0.941 against 0.943) and taught the
forest that a known upright means motion, which recordings of one activity each make true.
Measured leave-one-subject-out on the 21 UCI HAPT users (RF100, bench/bench_quality.py):
window accuracy 0.928 -> 0.940, as level walking is no longer taken for stairs (gait errors
280 -> 135). Sitting against standing barely moves, even with the upright known everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from features.context_kernel import upright_references
from features.gravity_kernel import gravity_and_spread

# A window moves when the std of its acceleration magnitude exceeds this (m/s^2): walking
# and stairs give 2-5, standing or sitting still below 0.3.
MOVING_STD = 1.0
# Only a window that ends this long a run of moving windows counts: walking lasts, while
# sitting down or standing up moves the phone for 2-4 s with the torso bent.
SUSTAINED_S = 5.0
# The estimate is the plain mean of the first MEMORY_S seconds of counted windows, then an
# exponential mean over about the last MEMORY_S of them, so a phone put back another way is
# learned anew.
MEMORY_S = 120.0
XYZ = np.arange(3)  # the triad's columns in an (n, t, 3) array
UPRIGHT_FEATURE_NAMES = ("upright_angle", "upright_dx", "upright_dy", "upright_dz")  # radians; unit-vector difference


@dataclass
class UprightTracker:
    """The running upright estimate of one stream: the (unnormalised) mean gravity direction
    of its moving windows, and how many there were. ``features.context_kernel`` updates the
    arrays in place."""

    direction: np.ndarray = field(default_factory=lambda: np.zeros(3))
    # The moving windows counted towards ``direction``, and the consecutive moving windows up to the last one.
    counts: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.int64))

    def references(self, gravity: np.ndarray, moving: np.ndarray, hop_s: float) -> np.ndarray:
        """The upright each window sees (n, 3) unit rows, NaN before the first counted window;
        then the windows update the estimate. ``gravity`` (n, 3) unit rows, ``moving`` (n,) bool,
        ``hop_s`` the time from one window to the next."""
        gravity, moving = np.asarray(gravity, dtype=np.float64), np.asarray(moving, dtype=np.bool_)
        return upright_references(gravity, moving, *upright_windows(hop_s), self.direction, self.counts)

    def state(self) -> dict[str, object]:
        moving_windows, moving_run = self.counts.tolist()
        return {"direction": self.direction.tolist(), "moving_windows": moving_windows, "moving_run": moving_run}

    @classmethod
    def restore(cls, state: dict[str, object]) -> "UprightTracker":
        direction = np.array(state["direction"], dtype=np.float64)
        return cls(direction, np.array([state["moving_windows"], state["moving_run"]], dtype=np.int64))


@lru_cache(maxsize=16)
def upright_windows(hop_s: float) -> tuple[int, int]:
    """``SUSTAINED_S`` and ``MEMORY_S`` in windows ``hop_s`` apart."""
    return max(1, math.ceil(SUSTAINED_S / hop_s - 1e-9)), max(1, round(MEMORY_S / hop_s))


def gravity_and_spread_of(acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window of acceleration (n, t, 3): the unit gravity direction (n, 3), zero rows for a
    zero mean, and the std of the acceleration magnitude (n,)."""
    acc = np.asarray(acc)
    unit, spread = np.empty((len(acc), 3)), np.empty(len(acc))
    gravity_and_spread(acc, XYZ, unit, spread)
    return unit, spread
