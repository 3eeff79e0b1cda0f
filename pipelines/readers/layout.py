"""Reading a folder of recordings, with labels and subjects from a SUBJECT/LABEL/ layout."""

from __future__ import annotations

import logging
from pathlib import Path

from features.errors import DataError
from pipelines.read_options import ReadOptions
from pipelines.readers.base import set_meta
from pipelines.readers.dispatch import SUPPORTED_SUFFIXES, is_export, read_unit
from pipelines.recording import Recording

log = logging.getLogger("posture.readers")


def find_units(folder: Path) -> list[Path]:
    """Files with a supported suffix and export folders under ``folder``, recursively, sorted.

    Hidden entries are skipped; other files are skipped with a log line.
    """
    units: list[Path] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name == "__MACOSX":
            continue
        if entry.is_dir():
            units += [entry] if is_export(entry) else find_units(entry)
        elif entry.suffix.lower() in SUPPORTED_SUFFIXES:
            units.append(entry)
        else:
            log.info("skipping %s: not a supported recording file", entry)
    return units


def read_folder(root: Path, options: ReadOptions) -> list[Recording]:
    """Every recording under ``root``, named by its path relative to ``root`` (without suffix).

    A file (or export) sitting exactly two folders down, ``SUBJECT/LABEL/file``, gets
    ``subject`` and ``label`` from those folder names where its data has no such column.
    """
    units = find_units(root)
    if not units:
        raise DataError(
            f"{root}: no recordings found.",
            f"put files with one of {', '.join(SUPPORTED_SUFFIXES)} (or app export folders) in it.",
        )
    recordings = []
    for unit in units:
        relative = unit.relative_to(root)
        name = relative.as_posix() if unit.is_dir() else relative.with_suffix("").as_posix()
        found = read_unit(unit, options, name)
        if len(relative.parts) == 3:
            for recording in found:
                set_meta(recording, "subject", relative.parts[0], override=False)
                set_meta(recording, "label", relative.parts[1], override=False)
        recordings += found
    return recordings
