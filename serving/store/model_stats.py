"""Running counts per served model version, written to the store's model_metrics table.

The server is the one writer of model_metrics. When it starts serving a version it records
the CV figures the version carries (dataset = the one they were measured on); these rows
add what the version does in production: how many windows, how confident, which labels.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SERVED_DATASET = "served"  # the model_metrics.dataset of these rows


@dataclass
class _VersionStats:
    predictions: int = 0
    confidence_sum: float = 0.0
    latency_ms_sum: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)


class ServedStats:
    def __init__(self) -> None:
        self._stats: dict[tuple[str, str], _VersionStats] = {}
        self._dirty = False

    def add(
        self, model_name: str, model_version: str, labels: list[str], confidences: list[float], latency_ms: float
    ) -> None:
        stats = self._stats.get((model_name, model_version))
        if stats is None:  # not setdefault: it would build a _VersionStats for every call
            stats = self._stats[model_name, model_version] = _VersionStats()
        stats.predictions += len(labels)
        stats.confidence_sum += sum(confidences)
        stats.latency_ms_sum += latency_ms * len(labels)
        stats.labels.update(labels)
        self._dirty = True

    def metrics(self) -> dict[tuple[str, str], dict[str, float]]:
        """Per (model, version): served_predictions, mean confidence and latency, share of each label."""
        out = {}
        for key, stats in self._stats.items():
            n = max(stats.predictions, 1)
            values = {
                "served_predictions": float(stats.predictions),
                "served_mean_confidence": stats.confidence_sum / n,
                "served_mean_latency_ms": stats.latency_ms_sum / n,
            }
            values.update({f"served_share_{label}": count / n for label, count in sorted(stats.labels.items())})
            out[key] = values
        return out

    def flush_to(self, store: Any) -> None:
        """Write the running counts (totals since the server started) when anything changed."""
        if not self._dirty:
            return
        for (name, version), values in self.metrics().items():
            store.add_model_metrics(name, version, values, SERVED_DATASET)
        self._dirty = False
