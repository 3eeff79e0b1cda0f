"""New labelled recordings dropped in an incoming folder: find, check, append, file away.

Files stay in the incoming folder until a retrain has recorded its decision, and only then
move to the processed folder. Each file's SHA-256 is kept in the dataset manifest
(``ingested_files``), so a run that failed after growing the dataset leaves files that the
next run recognises: they are not appended twice, but still count as data to decide on.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from features.errors import DataError, PostureError
from pipelines.dataset import MANIFEST_FILE, build_manifest, load_dataset, recordings_to_frame, write_dataset
from pipelines.recording import Recording


@dataclass
class IncomingFiles:
    """What sits in the incoming folder: each unit (file or app-export folder) by fingerprint."""

    folder: Path
    batch: str  # names this run's additions: recordings become "<batch>/<name>"
    units: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    known: dict[str, str] = field(default_factory=dict)  # sha256 -> "<batch>/<relative path>" already in the dataset

    @property
    def new(self) -> list[str]:
        return [rel for rel, sha in self.units.items() if sha not in self.known]


@contextmanager
def dataset_lock(dataset_dir: Path) -> Iterator[None]:
    """One retrain per dataset at a time, whoever starts it (schedule, CLI, a worker on this host)."""
    import fcntl

    dataset_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(dataset_dir.parent / f".{dataset_dir.name}.retrain.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PostureError(
                f"Another retrain of {dataset_dir.name} is running.", "wait for it to finish, then run this again."
            ) from None
        yield


def fingerprint(path: Path) -> str:
    """SHA-256 of a file, or of an export folder's files (names and bytes, in name order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def scan_incoming(folder: Path, manifest: dict[str, Any] | None) -> IncomingFiles:
    from pipelines.readers.layout import find_units

    found = IncomingFiles(folder, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"))
    found.known = dict((manifest or {}).get("ingested_files", {}))
    if folder.is_dir():
        found.units = {unit.relative_to(folder).as_posix(): fingerprint(unit) for unit in find_units(folder)}
    return found


def select_new(recordings: list[Recording], incoming: IncomingFiles) -> list[Recording]:
    """Recordings read from units not yet in the dataset, renamed into this run's batch."""
    new_units = [incoming.folder / rel for rel in incoming.new]
    chosen = []
    for recording in recordings:
        source = Path(recording.source)
        if any(source == unit or unit in source.parents for unit in new_units):
            recording.name = f"{incoming.batch}/{recording.name}"
            chosen.append(recording)
    return chosen


def check_new_recordings(recordings: list[Recording], channels: list[str] | None, classes: list[str] | None) -> None:
    """Labelled, with the dataset's channels, and no label the model line does not know."""
    for recording in recordings:
        frame = recording.frame
        if "label" not in frame.columns or frame["label"].isna().all():
            raise DataError(
                f"{recording.source}: new recording {recording.name} has no labels.",
                "label it (a label column, or an incoming/SUBJECT/LABEL/ folder layout); retraining needs labels.",
            )
        missing = [c for c in channels or [] if c not in frame.columns]
        if missing:
            raise DataError(
                f"{recording.source}: lacks channel(s) {', '.join(missing)} that the dataset has.",
                "add them to the recording, or keep it out of the incoming folder.",
            )
    labels = sorted({str(v) for r in recordings for v in r.frame["label"].dropna().unique()})
    unknown = [label for label in labels if classes is not None and label not in classes]
    if unknown:
        raise DataError(
            f"The new data brings label(s) {', '.join(unknown)}, which would change the label set "
            f"{', '.join(classes or [])}.",
            "a new label set is a new model: ingest it into a dataset and run `posture train`; "
            "or relabel the recordings. Nothing was added and no alias moved.",
        )


def grow_dataset(dataset_dir: Path, new: list[Recording], incoming: IncomingFiles, rate_hz: float) -> dict[str, Any]:
    """Append ``new`` to the dataset (creating it if need be) and record the files' fingerprints."""
    import pandas as pd

    old_frame, old = load_dataset(dataset_dir) if (dataset_dir / MANIFEST_FILE).is_file() else (None, {})
    added = recordings_to_frame(new)
    if old_frame is not None:
        added = added[[c for c in old_frame.columns if c in added.columns]]
    frame = added if old_frame is None else pd.concat([old_frame, added], ignore_index=True)
    fresh = build_manifest(frame, new, rate_hz)
    files = {incoming.units[rel]: f"{incoming.batch}/{rel}" for rel in incoming.new}
    manifest = {
        **{"name": dataset_dir.name, "synthetic": False},
        **old,
        **fresh,
        "created": old.get("created", fresh["created"]),
        "updated": fresh["created"],
        "sources": sorted(set(old.get("sources", [])) | set(fresh["sources"])),
        "rejected_rows": old.get("rejected_rows", []) + fresh["rejected_rows"],
        "ingested_files": {**old.get("ingested_files", {}), **files},
        "batches": old.get("batches", [])
        + [{"batch": incoming.batch, "files": sorted(incoming.new), "recordings": sorted(r.name for r in new)}],
    }
    write_dataset(dataset_dir, frame, manifest)
    return manifest


def move_to_processed(incoming: IncomingFiles, processed: Path, ingested: dict[str, str]) -> list[str]:
    """Move every unit now in the dataset to ``processed/<batch>/<path>``; prune emptied folders."""
    moved = []
    for rel, sha in incoming.units.items():
        if sha not in ingested:
            continue
        target = processed / ingested[sha]
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # the same bytes were filed under this name before
            target = target.with_name(f"{target.name}.{incoming.batch}")
        shutil.move(str(incoming.folder / rel), str(target))
        moved.append(str(target))
    for folder in sorted((p for p in incoming.folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    return moved
