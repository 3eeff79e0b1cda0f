"""What the prediction store holds: counts per label and model version, sessions, error
rate and latency percentiles, optionally for a time window and one (pseudonymous) device.

Read-only; ``posture db stats`` runs it on the read replica when one is configured.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, case, func, or_, select

from serving.store.live_accuracy import live_accuracy
from serving.store.schema import Connection as ConnectionRow
from serving.store.schema import Prediction, as_utc

PERCENTILES = (0.5, 0.95, 0.99)


def store_stats(engine: Engine, since: datetime | None = None, device_hash: str | None = None) -> dict[str, Any]:
    """A JSON-ready summary of the store (times in UTC)."""
    where: list[ColumnElement[bool]] = []
    if since is not None:
        where.append(Prediction.time >= since)
    if device_hash is not None:
        where.append(Prediction.device_hash == device_hash)
    with engine.connect() as conn:
        total, first, last = conn.execute(
            select(func.count(), func.min(Prediction.time), func.max(Prediction.time)).where(*where)
        ).one()
        return {
            "predictions": {"total": total, "first": as_utc(first), "last": as_utc(last)},
            "by_label": _by_label(conn, where),
            "by_model": _by_model(conn, where),
            "by_source": {
                source: n
                for source, n in conn.execute(
                    select(Prediction.source, func.count()).where(*where).group_by(Prediction.source)
                )
            },
            "latency_ms": _latency_percentiles(conn, where),
            "live_accuracy": live_accuracy(conn, where),
            "sessions": _sessions(conn, since, device_hash),
        }


def _by_label(conn: Connection, where: list[ColumnElement[bool]]) -> list[dict[str, Any]]:
    count = func.count().label("count")
    rows = conn.execute(
        select(Prediction.label, count)
        .where(*where)
        .group_by(Prediction.label)
        .order_by(count.desc(), Prediction.label)
    )
    return [{"label": label, "count": n} for label, n in rows]


def _by_model(conn: Connection, where: list[ColumnElement[bool]]) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            Prediction.model_name,
            Prediction.model_version,
            func.count(),
            func.avg(Prediction.confidence),
            func.max(Prediction.time),
        )
        .where(*where)
        .group_by(Prediction.model_name, Prediction.model_version)
        .order_by(Prediction.model_name, func.max(Prediction.time))
    )
    return [
        {
            "model_name": name,
            "model_version": version,
            "count": n,
            "mean_confidence": None if mean is None else float(mean),
            "last": as_utc(last),
        }
        for name, version, n, mean, last in rows
    ]


def _latency_percentiles(conn: Connection, where: list[ColumnElement[bool]]) -> dict[str, float | None]:
    """Linear-interpolated percentiles (PostgreSQL's percentile_cont): in SQL on
    PostgreSQL; SQLite has no percentile function, so fetch the two neighbouring ranks."""
    keys = [f"p{round(p * 100)}" for p in PERCENTILES]
    measured = [*where, Prediction.latency_ms.is_not(None)]
    if conn.dialect.name == "postgresql":
        values = conn.execute(
            select(*(func.percentile_cont(p).within_group(Prediction.latency_ms) for p in PERCENTILES)).where(*measured)
        ).one()
        return {key: None if value is None else float(value) for key, value in zip(keys, values)}
    n = conn.execute(select(func.count()).select_from(Prediction).where(*measured)).scalar_one()
    return {key: _sqlite_percentile(conn, measured, n, p) if n else None for key, p in zip(keys, PERCENTILES)}


def _sqlite_percentile(conn: Connection, measured: list[ColumnElement[bool]], n: int, p: float) -> float:
    position = p * (n - 1)
    rank = math.floor(position)
    values = (
        conn.execute(
            select(Prediction.latency_ms).where(*measured).order_by(Prediction.latency_ms).limit(2).offset(rank)
        )
        .scalars()
        .all()
    )
    if len(values) == 1:
        return values[0]
    return values[0] + (position - rank) * (values[1] - values[0])


def _sessions(conn: Connection, since: datetime | None, device_hash: str | None) -> dict[str, Any]:
    where: list[ColumnElement[bool]] = []
    if since is not None:  # sessions alive at any time in the window
        where.append(or_(ConnectionRow.closed_at.is_(None), ConnectionRow.closed_at >= since))
    if device_hash is not None:
        where.append(ConnectionRow.device_hash == device_hash)
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((ConnectionRow.closed_at.is_(None), 1), else_=0)), 0),
            func.coalesce(func.sum(ConnectionRow.frames), 0),
            func.coalesce(func.sum(ConnectionRow.predictions), 0),
            func.coalesce(func.sum(ConnectionRow.errors), 0),
        ).where(*where)
    ).one()
    total, still_open, frames, predictions, errors = (int(value) for value in row)  # PostgreSQL sums are numeric
    return {
        "total": total,
        "open": still_open,
        "frames": frames,
        "predictions": predictions,
        "errors": errors,
        "error_rate": errors / frames if frames else None,
    }
