"""What every reader shares: turning a raw frame into a checked Recording (options: ``pipelines.read_options``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.read_options import ReadOptions
from pipelines.recording import Recording, RejectedRows
from pipelines.validation import validate_frame

if TYPE_CHECKING:
    import pandas as pd


def finish_recording(
    frame: "pd.DataFrame",
    name: str,
    source: str,
    options: ReadOptions,
    rejected: list[RejectedRows] | None = None,
    check_units: bool = True,
    where: str | None = None,
) -> Recording:
    """Validate a reader's raw frame (canonical names, declared units) into a Recording.

    ``where`` names the data in error messages when ``source`` (the file) is not precise enough.
    """
    clean, found = validate_frame(frame, where or source, options, check_units=check_units)
    return Recording(name=name, frame=clean, source=source, rejected=list(rejected or []) + found)


def set_meta(recording: Recording, column: str, value: str | None, override: bool) -> None:
    """Set ``label``/``subject`` on every row: always when ``override``, else only when absent."""
    if value is not None and (override or column not in recording.frame.columns):
        recording.frame[column] = value
