"""The records the server hands the prediction store, and the rows it queues for them: plain
JSON-able values (the spool writes them as they are), device ids and client addresses
replaced by their keyed pseudonyms, non-finite numbers by NULL."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from serving.store.anonymize import pseudonymize
from serving.store.schema import as_utc


@dataclass
class PredictionRecord:
    time: datetime  # aware; a naive one is taken as UTC
    session_id: str | None
    device_id: str | None  # raw; the store hashes it
    source: str  # 'http' | 'ws'
    model_name: str
    model_version: str
    label: str
    confidence: float
    probabilities: dict[str, float]
    window_start: float
    window_end: float
    latency_ms: float


@dataclass(slots=True)
class WindowPredictions:
    """The predictions of one frame's or one request's windows: what they share, then one entry
    per window (``starts``, ``rows`` of probabilities in ``classes`` order, ``best`` the argmax)."""

    time: datetime  # aware; a naive one is taken as UTC
    session_id: str | None
    device_id: str | None  # raw; the store hashes it
    source: str
    model_name: str
    model_version: str
    classes: tuple[str, ...]
    window_s: float
    latency_ms: float
    starts: list[float]
    rows: list[list[float]]
    best: list[int]


@dataclass
class ConnectionRecord:
    session_id: str
    device_id: str | None  # raw; the store hashes it
    client_address: str | None  # raw; the store hashes it
    opened_at: datetime
    closed_at: datetime | None
    frames: int
    predictions: int
    errors: int
    close_code: int | None


@dataclass
class FeedbackRecord:
    """The true ``label`` of a session's or a device's predictions in a range: by the windows'
    own seconds (``window_from``..``window_to``), or by server time (``time_from``..``time_to``)."""

    session_id: str | None
    device_id: str | None  # raw; the store hashes it
    label: str
    window_from: float | None = None
    window_to: float | None = None
    time_from: datetime | None = None
    time_to: datetime | None = None


@dataclass
class DriftRecord:
    """One score of a drift scoring (serving/drift/monitor.py); ``bins`` only for feature scores."""

    time: datetime
    model_name: str
    model_version: str
    kind: str
    feature: str
    score: float
    threshold: float
    alarm: bool
    windows: int
    bins: dict[str, list[float]] | None = None


def _text(value: object) -> str | None:
    # Plain str (not UUIDs, numpy strings...): every queued row must be JSON for the spool.
    return None if value is None else str(value)


def _finite(value: float | None) -> float | None:
    # NaN/inf are not valid JSON and SQLite turns NaN into NULL: store NULL everywhere.
    return float(value) if value is not None and math.isfinite(value) else None


def prediction_row(record: PredictionRecord, anon_key: str) -> dict[str, Any]:
    return {
        **_prediction_source(
            record.time,
            record.session_id,
            record.device_id,
            record.source,
            record.model_name,
            record.model_version,
            anon_key,
        ),
        "label": _text(record.label),
        "confidence": _finite(record.confidence),
        "probabilities": {str(label): _finite(p) for label, p in record.probabilities.items()},
        "window_start": _finite(record.window_start),
        "window_end": _finite(record.window_end),
        "latency_ms": _finite(record.latency_ms),
    }


def window_prediction_rows(windows: WindowPredictions, anon_key: str) -> list[dict[str, Any]]:
    """The rows of ``windows``, as ``prediction_row`` makes them; what the windows share is
    converted once (this runs for every served window, on the event loop)."""
    shared = _prediction_source(
        windows.time,
        windows.session_id,
        windows.device_id,
        windows.source,
        windows.model_name,
        windows.model_version,
        anon_key,
    )
    classes, window_s, latency_ms = windows.classes, windows.window_s, _finite(windows.latency_ms)
    return [
        {
            **shared,
            "label": classes[k],
            "confidence": _finite(row[k]),
            "probabilities": {label: _finite(p) for label, p in zip(classes, row)},
            "window_start": _finite(start),
            "window_end": _finite(start + window_s),
            "latency_ms": latency_ms,
        }
        for start, row, k in zip(windows.starts, windows.rows, windows.best)
    ]


def _prediction_source(
    time: datetime,
    session_id: str | None,
    device_id: str | None,
    source: str,
    model_name: str,
    model_version: str,
    anon_key: str,
) -> dict[str, Any]:
    """The fields of a prediction row that say when, from where and by which model."""
    return {
        "time": as_utc(time),
        "session_id": _text(session_id),
        "device_hash": pseudonymize(_text(device_id), anon_key),
        "source": _text(source),
        "model_name": _text(model_name),
        "model_version": _text(model_version),
    }


def connection_row(record: ConnectionRecord, anon_key: str) -> dict[str, Any]:
    return {
        "session_id": _text(record.session_id),
        "device_hash": pseudonymize(_text(record.device_id), anon_key),
        "client_hash": pseudonymize(_text(record.client_address), anon_key),
        "opened_at": as_utc(record.opened_at),
        "closed_at": as_utc(record.closed_at),
        "frames": int(record.frames),
        "predictions": int(record.predictions),
        "errors": int(record.errors),
        "close_code": None if record.close_code is None else int(record.close_code),
    }


def metric_rows(
    model_name: str, model_version: str, metrics: dict[str, float], dataset: str | None
) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "model_name": _text(model_name),
            "model_version": _text(model_version),
            "metric": _text(metric),
            "value": _finite(value),
            "dataset": _text(dataset),
            "recorded_at": now,
        }
        for metric, value in metrics.items()
    ]


def feedback_row(record: FeedbackRecord, anon_key: str) -> dict[str, Any]:
    return {
        "received_at": datetime.now(UTC),
        "session_id": _text(record.session_id),
        "device_hash": pseudonymize(_text(record.device_id), anon_key),
        "window_from": _finite(record.window_from),
        "window_to": _finite(record.window_to),
        "time_from": as_utc(record.time_from),
        "time_to": as_utc(record.time_to),
        "label": _text(record.label),
    }


def drift_row(record: DriftRecord) -> dict[str, Any]:
    bins = None
    if record.bins is not None:
        bins = {key: [_finite(v) for v in values] for key, values in record.bins.items()}
    return {
        "time": as_utc(record.time),
        "model_name": _text(record.model_name),
        "model_version": _text(record.model_version),
        "kind": _text(record.kind),
        "feature": _text(record.feature),
        "score": _finite(record.score),
        "threshold": float(record.threshold),
        "alarm": bool(record.alarm),
        "windows": int(record.windows),
        "bins": bins,
    }
