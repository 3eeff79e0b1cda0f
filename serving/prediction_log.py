"""Where every served prediction goes: a store row, a Prometheus count and the running stats.

One place builds the prediction rows, whatever the transport (HTTP, WebSocket, Sensor Logger
push, MQTT): the transport is only the row's ``source``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prometheus_client import Counter

from serving.metrics import ServerMetrics
from serving.model_holder import ServedModel
from serving.store.model_stats import ServedStats
from serving.store.prediction_store import PredictionStore
from serving.store.records import WindowPredictions


class PredictionLog:
    def __init__(self, store: PredictionStore, stats: ServedStats, metrics: ServerMetrics) -> None:
        self.store, self.stats, self.metrics = store, stats, metrics
        # The counter child of each (model, version, label, source): looking one up costs a lock
        # and a tuple, and every served window counts one.
        self._counted: dict[tuple[str, str, str, str], Counter] = {}

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
        classes, name, version = served.classes, served.name, served.version
        self.store.add_window_predictions(
            WindowPredictions(
                time=datetime.now(timezone.utc),
                session_id=session_id,
                device_id=device_id,
                source=source,
                model_name=name,
                model_version=version,
                classes=classes,
                window_s=served.spec.window_s,
                latency_ms=latency_ms,
                starts=starts,
                rows=rows,
                best=best,
            )
        )
        labels = [classes[k] for k in best]
        for label in labels:
            self._counter(name, version, label, source).inc()
        self.stats.add(name, version, labels, [row[k] for row, k in zip(rows, best)], latency_ms)
        return labels

    def _counter(self, name: str, version: str, label: str, source: str) -> Counter:
        key = (name, version, label, source)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.metrics.predictions.labels(*key)
        return counter
