"""Recordings replayed through a ``DriftMonitor`` offline, windowed and predicted as a live
stream is (``features.windows``, stream contexts, the served engine), on the stream's own
clock: the detection tests and ``bench/bench_drift.py`` use it to count windows to an alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.feature_sets import featurize, window_contexts
from features.windows import sliding_windows
from serving.drift.monitor import DriftMonitor, Scoring
from serving.model_holder import ServedModel


@dataclass
class StreamClock:
    """Seconds of stream time fed so far."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def interleave(streams: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Devices streaming at once: their (features, probabilities) in time order, cut to the shortest.

    Device k starts k/len(streams) of the way into its own sequence (and wraps around): wearers
    of a fleet are not in step, so the window holds a mix of activities, not all of one.
    """
    n, count = min(len(f) for f, _ in streams), len(streams)

    def merged(arrays: list[np.ndarray]) -> np.ndarray:
        staggered = [np.roll(a[:n], -k * n // count, axis=0) for k, a in enumerate(arrays)]
        return np.stack(staggered, axis=1).reshape(n * count, -1)

    return merged([f for f, _ in streams]), merged([p for _, p in streams])


def predict_stream(served: ServedModel, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features and probabilities of one stream's (n_samples, channels) samples on the model's grid."""
    spec = served.spec
    windows = sliding_windows(np.asarray(samples, dtype=np.float32), spec.window_samples, spec.hop_samples)
    features = featurize(windows, spec, window_contexts(windows, spec))
    return features, served.engine.predict_proba(features)


def fleet_streams(served: ServedModel, frame: Any) -> tuple[np.ndarray, np.ndarray]:
    """A labelled dataset's wearers (``subject``) streaming at once, each its recordings in turn."""
    streams = []
    for _, wearer in frame.groupby("subject", sort=False):
        parts = [
            predict_stream(served, r[list(served.spec.channels)].to_numpy()) for _, r in wearer.groupby("recording")
        ]
        streams.append((np.concatenate([f for f, _ in parts]), np.concatenate([p for _, p in parts])))
    return interleave(streams)


async def feed(
    monitor: DriftMonitor,
    served: ServedModel,
    features: np.ndarray,
    probabilities: np.ndarray,
    clock: StreamClock,
    devices: int = 1,
    batch: int = 50,
) -> list[Scoring]:
    """Record the windows ``batch`` at a time, scoring as the server would; ``clock`` advances a hop
    per window of each of ``devices`` streaming together (their windows interleaved)."""
    scorings = []
    for start in range(0, len(features), batch):
        part = slice(start, start + batch)
        monitor.record(served, features[part], probabilities[part])
        clock.now += len(features[part]) * served.spec.hop_s / devices
        scorings += await monitor.score_due()
    return scorings
