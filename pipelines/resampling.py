"""Resample a canonical Recording to a fixed rate, splitting it at long gaps."""

from __future__ import annotations

from features.contract import TIME_COLUMN
from features.resample import resample_uniform
from pipelines.recording import Recording

CARRIED_COLUMNS = ("label", "subject")  # strings, carried by nearest-previous sample


def resample_recording(rec: Recording, rate_hz: float, max_gap_s: float) -> list[Recording]:
    """Linear interpolation onto a ``rate_hz`` grid; gaps over ``max_gap_s`` start a new segment.

    One segment keeps the recording's name; several are named ``<name>#1``, ``<name>#2``...
    Labels change row by row within a segment. The rows rejected at reading travel with the
    first segment only, so a dataset's report counts them once.
    """
    import pandas as pd

    channels = list(rec.channels)
    frame = rec.frame
    segments = resample_uniform(
        frame[TIME_COLUMN].to_numpy(dtype=float), frame[channels].to_numpy(dtype=float), rate_hz, max_gap_s
    )
    carried = [c for c in CARRIED_COLUMNS if c in frame.columns]
    out = []
    for number, (new_t, new_values, previous) in enumerate(segments, start=1):
        new_frame = pd.DataFrame(new_values, columns=channels)
        new_frame.insert(0, TIME_COLUMN, new_t)
        for column in carried:
            new_frame[column] = frame[column].to_numpy()[previous]
        name = rec.name if len(segments) == 1 else f"{rec.name}#{number}"
        out.append(Recording(name, new_frame, rec.source, list(rec.rejected) if number == 1 else []))
    return out
