"""Batch prediction on a recording with a registered model's own preprocessing spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from features.errors import SpecError
from features.feature_sets import featurize, window_contexts
from features.smoothing import ForwardFilter
from features.windows import sliding_windows, window_starts
from pipelines.recording import Recording
from pipelines.registry import LoadedModel

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class WindowPredictions:
    """One row per window: where it is (s from the recording's start), label, probabilities."""

    start: np.ndarray
    end: np.ndarray
    probabilities: np.ndarray  # (n_windows, n_classes) in ``classes`` order
    classes: list[str]

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.classes)[self.probabilities.argmax(axis=1)]

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    def to_frame(self) -> "pd.DataFrame":
        import pandas as pd

        frame = pd.DataFrame(
            {"start": self.start, "end": self.end, "label": self.labels, "confidence": self.confidence}
        )
        for index, label in enumerate(self.classes):
            frame[f"p_{label}"] = self.probabilities[:, index]
        return frame


def check_channels(recording: Recording, model: LoadedModel) -> None:
    missing = [c for c in model.spec.channels if c not in recording.frame.columns]
    if missing:
        raise SpecError(
            f"{recording.source} lacks channel(s) {', '.join(missing)} that model {model.uri} needs.",
            "map them to the file's columns (CANONICAL=COLUMN), or use a model trained on the accelerometer alone.",
            options=("channel_map",),
        )


def predict_recording(
    model: LoadedModel, recording: Recording, smooth: bool = False, max_gap_s: float = 0.5
) -> WindowPredictions:
    """Resample to the model's rate, window every gap-free segment, predict all windows at once.

    ``smooth`` runs the model's causal forward filter over the windows in time order.
    """
    from pipelines.readers import resample_recording

    check_channels(recording, model)
    spec = model.spec
    origin = float(recording.frame["timestamp"].iloc[0])
    segments = resample_recording(recording, spec.rate_hz, max_gap_s)
    windows, starts = [], []
    for segment in segments:
        values = segment.frame[list(spec.channels)].to_numpy(np.float32)
        index = window_starts(len(values), spec.window_samples, spec.hop_samples)
        windows.append(sliding_windows(values, spec.window_samples, spec.hop_samples))
        starts.append(segment.frame["timestamp"].to_numpy()[index] - origin)
    all_windows = np.concatenate(windows) if windows else np.empty((0,))
    if all_windows.shape[0] == 0:
        raise SpecError(
            f"{recording.source} is shorter than one window ({spec.window_s} s at {spec.rate_hz:g} Hz) "
            "in every gap-free stretch.",
            f"record at least {spec.window_s} s without gaps.",
        )
    features = featurize(all_windows, spec, window_contexts(all_windows, spec))
    probabilities = model.engine.predict_proba(features)
    if smooth:
        probabilities = ForwardFilter.for_spec(spec).run(probabilities)
    start = np.concatenate(starts)
    return WindowPredictions(
        start=start, end=start + spec.window_s, probabilities=probabilities, classes=list(model.engine.classes)
    )
