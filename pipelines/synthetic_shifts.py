"""Synthetic data that a model trained on the sample has not seen: the drift tests' and
``bench/bench_drift.py``'s shifted streams (``pipelines.synthetic`` draws the wearers).

- ``none``: new wearers of the same population (the same distribution);
- ``rotated``: the sensor turned 90 degrees about its x axis (y and z swap places);
- ``placement``: worn on the front of the thigh near the knee instead of its outer side
  (turned 90 degrees about the thigh, twice the lever from the hip);
- ``gait``: a shuffling gait: slower, shorter, softer steps than any sample wearer's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from features.contract import ACC_CHANNELS, GYRO_CHANNELS
from features.errors import DataError
from pipelines.synthetic import SubjectProfile, generate_sample_dataset

if TYPE_CHECKING:
    import pandas as pd

SHIFTS: tuple[str, ...] = ("none", "rotated", "placement", "gait")


def _placement(profile: SubjectProfile) -> SubjectProfile:
    return replace(profile, mount_rad=(0.0, np.pi / 2, 0.0), lever_m=2 * profile.lever_m)


def _gait(profile: SubjectProfile) -> SubjectProfile:
    return replace(
        profile,
        walk_step_hz=1.1,
        run_step_hz=1.9,
        walk_swing_rad=0.12,
        run_swing_rad=0.3,
        walk_bounce=0.5,
        run_bounce=4.0,
        impact=0.05,
    )


def shifted_dataset(shift: str, n_subjects: int = 4, seconds_per_posture: float = 60.0, seed: int = 1) -> pd.DataFrame:
    """A labelled dataset like ``generate_sample_dataset``'s, with ``shift`` applied to every wearer."""
    if shift not in SHIFTS:
        raise DataError(f"Unknown shift {shift!r}.", f"use one of: {', '.join(SHIFTS)}.")
    adjust = {"placement": _placement, "gait": _gait}.get(shift)
    frame = generate_sample_dataset(n_subjects, seconds_per_posture, seed=seed, adjust=adjust)
    if shift == "rotated":  # +90 degrees about x: (x, y, z) -> (x, -z, y), for both sensors
        for x, y, z in (ACC_CHANNELS, GYRO_CHANNELS):
            frame[y], frame[z] = -frame[z].to_numpy(), frame[y].to_numpy()
    return frame
