"""A recorded part as a canonical Parquet recording in the incoming folder, plus its manifest line.

Layout: ``<incoming>/<subject>/<label>/<session id>-<part>.parquet`` (the ``SUBJECT/LABEL/``
layout retrain reads), with the data contract's columns: ``timestamp``, the channels,
``label``, ``subject``, ``recording``. The file is written under a hidden temporary name
(retrain's scan skips hidden entries), flushed to disk, then renamed: a crash leaves no half
file that retrain would read. Each part then gets one line in ``<incoming>/recordings.jsonl``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

MANIFEST_FILE = "recordings.jsonl"


@dataclass(frozen=True)
class ManifestEntry:
    """What the manifest says of one file: who, what, when, from where."""

    file: str  # relative to the incoming folder
    device: str | None  # the device id's pseudonym (the prediction store's), never the id
    subject: str
    label: str
    recording: str
    session_id: str
    source: str  # the transport: ws, mqtt
    samples: int
    rate_hz: float
    channels: list[str]
    t_start: float  # stream seconds (the client's clock when it sends t0)
    t_end: float
    started_at: str  # UTC, ISO 8601, as the server received the samples
    ended_at: str
    model_version: str | None


@dataclass(frozen=True)
class RecordedPart:
    times: np.ndarray  # (n,) float64 seconds
    samples: np.ndarray  # (n, channels) float32, on the model's grid
    entry: ManifestEntry


def write_part(folder: Path, part: RecordedPart) -> Path:
    """Write ``part`` atomically under ``folder``; then append its manifest line. OSError on failure
    (a full disk: nothing is left behind but what was written before)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    entry = part.entry
    target = folder / entry.file
    target.parent.mkdir(parents=True, exist_ok=True)
    n = len(part.times)
    columns = {"timestamp": pa.array(part.times, pa.float64())}
    columns.update({c: pa.array(part.samples[:, i], pa.float32()) for i, c in enumerate(entry.channels)})
    columns.update({k: pa.array([getattr(entry, k)] * n, pa.string()) for k in ("label", "subject", "recording")})
    temp = target.with_name(f".{target.name}.tmp")
    try:
        with open(temp, "wb") as handle:
            pq.write_table(pa.table(columns), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    append_manifest(folder, entry)
    return target


def append_manifest(folder: Path, entry: ManifestEntry) -> None:
    """One JSON line, in one append: concurrent sessions never interleave their lines."""
    line = (json.dumps(asdict(entry), separators=(",", ":")) + "\n").encode()
    fd = os.open(folder / MANIFEST_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
