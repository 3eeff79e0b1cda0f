"""A canonical dataset on disk: one Parquet table of recordings plus a JSON manifest."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.contract import ALL_CHANNELS, TIME_COLUMN
from features.errors import DataError
from pipelines.recording import Recording

if TYPE_CHECKING:
    import pandas as pd

TABLE_FILE = "recordings.parquet"
MANIFEST_FILE = "manifest.json"


def recordings_to_frame(recordings: list[Recording]) -> "pd.DataFrame":
    """Stack recordings into one table with a ``recording`` column naming each."""
    import pandas as pd

    parts = []
    for rec in recordings:
        part = rec.frame.copy()
        part["recording"] = rec.name
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    for column in ("label", "subject"):
        if column not in frame.columns:
            frame[column] = None
    ordered = [TIME_COLUMN, *[c for c in ALL_CHANNELS if c in frame.columns], "label", "subject", "recording"]
    return frame[ordered]


def build_manifest(
    frame: "pd.DataFrame", recordings: list[Recording], rate_hz: float, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a dataset holds: recordings, subjects, labels, rate, duration, sources, rejections."""
    labels = frame["label"].dropna()
    per_label_s = (labels.value_counts() / rate_hz).round(2).to_dict()
    return {
        "created": datetime.now(timezone.utc).isoformat(),
        "rate_hz": rate_hz,
        "channels": [c for c in ALL_CHANNELS if c in frame.columns],
        "n_samples": int(len(frame)),
        "duration_s": round(len(frame) / rate_hz, 2),
        "recordings": sorted(frame["recording"].unique().tolist()),
        "subjects": sorted(frame["subject"].dropna().unique().tolist()),
        "labels": sorted(labels.unique().tolist()),
        "seconds_per_label": per_label_s,
        "sources": sorted({rec.source for rec in recordings}),
        "rejected_rows": [
            {"recording": rec.name, "source": rec.source, **r.to_dict()} for rec in recordings for r in rec.rejected
        ],
        **(extra or {}),
    }


def write_dataset(directory: Path, frame: "pd.DataFrame", manifest: dict[str, Any]) -> Path:
    """Write table then manifest (the manifest last, so a dataset with one is complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (TABLE_FILE + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(directory / TABLE_FILE)
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, default=str))
    return directory


def load_dataset(directory: Path) -> tuple["pd.DataFrame", dict[str, Any]]:
    """Read a dataset written by ``write_dataset``."""
    import pandas as pd

    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise DataError(
            f"No dataset at {directory} (no {MANIFEST_FILE}).",
            "build one with `posture ingest PATH --dataset NAME` or `posture ingest --sample`.",
        )
    manifest = json.loads(manifest_path.read_text())
    return pd.read_parquet(directory / TABLE_FILE), manifest
