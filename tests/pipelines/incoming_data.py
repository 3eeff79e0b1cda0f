"""Labelled synthetic recordings written as a user would drop them: incoming/SUBJECT/LABEL/*.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from features.contract import ALL_CHANNELS, TIME_COLUMN
from pipelines.synthetic import POSTURES, SubjectProfile, generate_segment


def write_subject(
    incoming: Path,
    subject: str,
    seed: int,
    seconds: float = 20.0,
    postures: tuple[str, ...] = POSTURES,
    rate_hz: float = 50.0,
) -> list[Path]:
    """One CSV per posture for a new synthetic wearer; label and subject come from the folders."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    profile = SubjectProfile.random(rng, subject)
    written = []
    for posture in postures:
        data = generate_segment(posture, profile, seconds, rate_hz, rng)
        frame = pd.DataFrame(data, columns=list(ALL_CHANNELS))
        frame.insert(0, TIME_COLUMN, np.arange(len(frame)) / rate_hz)
        path = incoming / subject / posture / f"{subject}-{posture}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        written.append(path)
    return written
