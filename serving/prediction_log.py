"""Where every served prediction goes: a store row, a Prometheus count and the running stats.

One place builds the ``PredictionRecord`` rows, whatever the transport (HTTP, WebSocket,
Sensor Logger push, MQTT): the transport is only the row's ``source``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from serving.metrics import ServerMetrics
from serving.model_holder import ServedModel
from serving.store.model_stats import ServedStats
from serving.store.prediction_store import PredictionStore
from serving.store.records import PredictionRecord


class PredictionLog:
    def __init__(self, store: PredictionStore, stats: ServedStats, metrics: ServerMetrics) -> None:
        self.store, self.stats, self.metrics = store, stats, metrics

    def log(
        self,
        served: ServedModel,
        source: str,
        session_id: str | None,
        device_id: str | None,
        starts: list[float],
        rows: list[list[float]],
        best: list[int],
        latency_ms: float,
    ) -> list[str]:
        """Queue one row per window (probabilities ``rows``, argmax ``best``); return the labels."""
        classes, window_s = served.classes, served.spec.window_s
        labels = [classes[k] for k in best]
        confidences = [row[k] for row, k in zip(rows, best)]
        now = datetime.now(timezone.utc)
        self.store.add_predictions(
            [
                PredictionRecord(
                    time=now,
                    session_id=session_id,
                    device_id=device_id,
                    source=source,
                    model_name=served.name,
                    model_version=served.version,
                    label=label,
                    confidence=confidence,
                    probabilities=dict(zip(classes, row)),
                    window_start=start,
                    window_end=start + window_s,
                    latency_ms=latency_ms,
                )
                for label, confidence, row, start in zip(labels, confidences, rows, starts)
            ]
        )
        for label in labels:
            self.metrics.predictions.labels(served.name, served.version, label, source).inc()
        self.stats.add(served.name, served.version, labels, confidences, latency_ms)
        return labels
