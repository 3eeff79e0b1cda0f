"""Prometheus metrics of one server app, named as MLServer and KServe users know them.

Each app owns a ``CollectorRegistry`` (never the global one), so tests can build
several apps in one process. Store counters are read at scrape time, not copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """Every metric the server exports, as attributes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # MLServer (starlette_exporter) names for the REST layer.
        self.requests = Counter(
            "rest_server_requests",
            "HTTP requests by endpoint and status.",
            ["method", "path", "status_code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "rest_server_request_duration_seconds",
            "HTTP request duration.",
            ["method", "path"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        # KServe names for the model stages, per micro-batch.
        self.preprocess = Histogram(
            "request_preprocess_seconds",
            "Feature extraction time per micro-batch.",
            ["model_name"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        self.predict = Histogram(
            "request_predict_seconds",
            "Model inference time per micro-batch.",
            ["model_name", "model_version", "engine"],
            buckets=SECONDS_BUCKETS,
            registry=r,
        )
        # MLServer adaptive-batching names.
        self.batch_size = Histogram("batch_request_size", "Windows per micro-batch.", buckets=BATCH_BUCKETS, registry=r)
        self.queue = Gauge("batch_request_queue", "Windows waiting for the next micro-batch.", registry=r)
        self.predictions = Counter(
            "model_predictions",
            "Windows predicted, by label and model version.",
            ["model_name", "model_version", "label", "source"],
            registry=r,
        )
        self.live_accuracy = Gauge(
            "posture_live_accuracy",
            "Accuracy on the windows ground truth covers (POST /v1/feedback), by model version.",
            ["model_name", "model_version"],
            registry=r,
        )
        self.live_accuracy_windows = Gauge(
            "posture_live_accuracy_windows",
            "Windows ground truth covers, by model version.",
            ["model_name", "model_version"],
            registry=r,
        )
        # Drift of each served version's rolling window from its reference profile (serving/drift).
        self.drift_score = Gauge(
            "posture_drift_score",
            "Drift score at the last scoring: PSI per feature, JS distance of predicted labels, confidence drop.",
            ["model_version", "kind", "feature"],
            registry=r,
        )
        self.drift_alarm = Gauge(
            "posture_drift_alarm",
            "1 while a drift score has stayed above its threshold.",
            ["model_version"],
            registry=r,
        )
        self.drift_tracking = Gauge(
            "posture_drift_tracking",
            "1 when drift is tracked for the version; 0 when it carries no reference profile (trained before it).",
            ["model_version"],
            registry=r,
        )
        self.drift_retrains = Counter(
            "posture_drift_retrains",
            "Retrain runs asked for by drift alarms, by outcome (started, rate_limited, no_api, failed).",
            ["outcome"],
            registry=r,
        )
        self.model_info = Gauge(
            "model_info",
            "The model version being served (value 1).",
            ["model_name", "model_version", "alias", "engine"],
            registry=r,
        )
        self.reloads = Counter("model_reloads", "Model hot reloads by outcome.", ["outcome"], registry=r)
        self.sessions = Gauge("websocket_sessions_open", "Open /v1/stream sessions.", registry=r)
        self.frames = Counter(
            "websocket_frames_received", "Stream frames by format and outcome.", ["format", "outcome"], registry=r
        )
        self.session_closes = Counter(
            "websocket_sessions_closed", "Stream sessions closed, by close code.", ["code"], registry=r
        )
        self.rate_limited = Counter(
            "rate_limited_requests", "Requests or frames refused by rate limits.", ["scope"], registry=r
        )
        self.auth_refused = Counter(
            "auth_refused_requests",
            "Requests and stream handshakes refused by API-key auth.",
            ["scope", "reason"],
            registry=r,
        )
        self.redis_errors = Counter(
            "redis_errors", "Redis calls that failed (the in-process fallback answered).", ["operation"], registry=r
        )
        # The MQTT bridge (serving/mqtt), when the server runs one.
        self.mqtt_messages = Counter(
            "mqtt_messages",
            "MQTT messages in (imu, hello) and out (prediction, error).",
            ["direction", "kind"],
            registry=r,
        )
        self.mqtt_partition_messages = Counter(
            "mqtt_partition_messages", "Device messages received, by partition.", ["partition"], registry=r
        )
        self.mqtt_decode_errors = Counter(
            "mqtt_decode_errors", "MQTT payloads refused (an error publish), by code.", ["code"], registry=r
        )
        self.mqtt_duplicates = Counter(
            "mqtt_duplicate_frames", "QoS 1 redeliveries dropped by their t0 (rows the session had).", registry=r
        )
        self.mqtt_connected = Gauge("mqtt_connected", "1 while the bridge is connected to the broker.", registry=r)
        self.mqtt_reconnects = Counter("mqtt_reconnects", "Connections to the broker lost and retried.", registry=r)
        self.mqtt_lane_frames = Histogram(
            "mqtt_lane_burst_frames",
            "Frames of open device sessions cut together by the bridge's lane, per burst.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )

    def watch_store(self, store: Any) -> None:
        """Export the prediction store's counters (read at each scrape)."""
        self.registry.register(StoreCollector(store))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StoreCollector(Collector):
    """``prediction_log_*``: rows written, spooled, quarantined and dropped (must stay 0), backlog."""

    COUNTERS = (
        ("rows_written", "Prediction-log rows written to the database."),
        ("rows_spooled", "Prediction-log rows spooled to disk while the database was unreachable."),
        ("rows_dropped", "Prediction-log rows lost (must stay 0)."),
        ("rows_quarantined", "Prediction-log rows the database refused as data, set aside in the quarantine."),
    )
    GAUGES = (
        ("backlog", "Spooled rows not yet replayed into the database."),
        ("queue_depth", "Rows in memory, not yet in the database or the spool: what a SIGKILL would lose."),
        ("quarantined", "Rows in the quarantine folder (found at start and set aside since): inspect them."),
    )

    def __init__(self, store: Any) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        for attribute, help_text in self.COUNTERS:
            yield CounterMetricFamily(
                f"prediction_log_{attribute}", help_text, value=int(getattr(self._store, attribute))
            )
        for attribute, help_text in self.GAUGES:
            yield GaugeMetricFamily(
                f"prediction_log_{attribute}", help_text, value=int(getattr(self._store, attribute))
            )
