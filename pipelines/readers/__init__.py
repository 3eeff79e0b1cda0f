"""From files on disk to canonical, validated Recordings.

Formats: generic CSV/TSV/Parquet (``--map`` and units options), the Sensor Logger and
phyphox app exports (folder, zip or phyphox CSV), the UEA/sktime ``.ts`` format, and the
UCI HAPT dataset's RawData layout (folder or zip, one recording per experiment).
A folder is walked recursively, with labels and subjects from a SUBJECT/LABEL/ layout.
"""

from __future__ import annotations

from pathlib import Path

from features.errors import DataError
from pipelines.read_options import ReadOptions
from pipelines.readers.base import set_meta
from pipelines.readers.dispatch import SUPPORTED_SUFFIXES, is_export, read_unit
from pipelines.readers.layout import read_folder
from pipelines.recording import Recording
from pipelines.resampling import resample_recording

__all__ = ["ReadOptions", "SUPPORTED_SUFFIXES", "read_recordings", "resample_recording"]


def read_recordings(path: Path, options: ReadOptions | None = None) -> list[Recording]:
    """Read a file, an app export (folder or zip) or a folder of recordings.

    ``options.label`` / ``options.subject`` override any column or folder layout.
    """
    path = Path(path)
    options = options or ReadOptions()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder.", "check the path.")
    if path.is_dir() and not is_export(path):
        recordings = read_folder(path, options)
    else:
        recordings = read_unit(path, options, path.name if path.is_dir() else path.stem)
    for recording in recordings:
        set_meta(recording, "label", options.label, override=True)
        set_meta(recording, "subject", options.subject, override=True)
    return recordings
