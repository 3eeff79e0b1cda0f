"""Cut a canonical dataset into labelled windows with the spec's length and hop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from features.errors import DataError
from features.feature_sets import window_contexts
from features.spec import WindowSpec
from features.windows import sliding_windows, window_starts

if TYPE_CHECKING:
    import pandas as pd

# A training window keeps its label only when this share of its samples agree;
# windows across a posture transition are ambiguous and left out of training.
MIN_LABEL_PURITY = 0.8


@dataclass
class WindowedDataset:
    windows: np.ndarray  # (n_windows, window_samples, n_channels) float32
    labels: np.ndarray  # (n_windows,) str
    groups: np.ndarray  # (n_windows,) subject of each window (recording when no subject)
    recordings: np.ndarray  # (n_windows,) recording name
    starts_s: np.ndarray  # (n_windows,) window start, seconds from the recording's start
    contexts: np.ndarray  # (n_windows, CONTEXT_COLUMNS) what each window's stream said of it (features.stream_context)


def _majority_labels(codes: np.ndarray, window: int, hop: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Majority label code and its share for every window of an int-coded label column.

    Codes run 0..n_classes-1; the code ``n_classes`` (unlabelled) can win the majority too.
    """
    coded = sliding_windows(codes[:, None], window, hop)[:, :, 0]  # (n_windows, window)
    counts = np.stack([(coded == k).sum(axis=1) for k in range(n_classes + 1)], axis=1)
    return counts.argmax(axis=1), counts.max(axis=1) / window


def window_dataset(frame: "pd.DataFrame", spec: WindowSpec) -> WindowedDataset:
    """Windows of every recording, labelled by majority; impure and unlabelled windows dropped.

    Windows run over each whole recording, unlabelled samples included, so a window never
    joins samples either side of an unlabelled stretch; it is training data only when
    ``MIN_LABEL_PURITY`` of its samples carry one label. Every window of a recording, kept or
    not, moves its stream context (upright, last posture) on, as it would in a live stream.
    """
    missing = [c for c in spec.channels if c not in frame.columns]
    if missing:
        raise DataError(
            f"The dataset lacks channel(s) {', '.join(missing)} that training asked for.",
            "train on the accelerometer alone (channels acc), or ingest data with those channels.",
            options=("channels",),
        )
    labelled = frame[frame["label"].notna()]
    if labelled.empty:
        raise DataError(
            "The dataset has no labelled rows.",
            "ingest with a label for each file or a label column.",
            options=("label",),
        )
    classes = np.array(sorted(labelled["label"].unique()))
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("windows", "labels", "groups", "recordings", "starts", "contexts")
    }
    for name, rec in frame.groupby("recording", sort=True):
        values = rec[list(spec.channels)].to_numpy(np.float32)
        starts = window_starts(len(values), spec.window_samples, spec.hop_samples)
        if starts.size == 0:
            continue
        labels = rec["label"]
        codes = np.where(labels.notna(), np.searchsorted(classes, labels.fillna(classes[0]).to_numpy()), len(classes))
        majority, purity = _majority_labels(codes, spec.window_samples, spec.hop_samples, len(classes))
        keep = (purity >= MIN_LABEL_PURITY) & (majority < len(classes))
        subject = rec["subject"].iloc[0]
        group = str(subject) if subject is not None and subject == subject else str(name)
        timestamps = rec["timestamp"].to_numpy()
        windows = sliding_windows(values, spec.window_samples, spec.hop_samples)
        parts["windows"].append(windows[keep])
        parts["contexts"].append(window_contexts(windows, spec)[keep])
        parts["labels"].append(classes[majority[keep]])
        parts["groups"].append(np.full(keep.sum(), group, dtype=object))
        parts["recordings"].append(np.full(keep.sum(), str(name), dtype=object))
        parts["starts"].append(timestamps[starts[keep]] - timestamps[0])
    if not parts["windows"]:
        raise DataError(
            f"No recording is longer than one window ({spec.window_s} s).",
            "use a shorter window or longer recordings.",
            options=("window_s",),
        )
    return WindowedDataset(
        windows=np.concatenate(parts["windows"]),
        labels=np.concatenate(parts["labels"]),
        groups=np.concatenate(parts["groups"]),
        recordings=np.concatenate(parts["recordings"]),
        starts_s=np.concatenate(parts["starts"]),
        contexts=np.concatenate(parts["contexts"]),
    )
