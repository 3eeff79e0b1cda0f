"""Drift scores read back from the store (``drift_scores``, written by serving/drift) for
`posture drift report`: one dict per score, oldest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from serving.store.schema import DriftScore, as_utc


def drift_scores(
    engine: Engine, since: datetime | None = None, model_version: str | None = None
) -> list[dict[str, Any]]:
    query = select(DriftScore).order_by(DriftScore.time, DriftScore.id)
    if since is not None:
        query = query.where(DriftScore.time >= since)
    if model_version is not None:
        query = query.where(DriftScore.model_version == model_version)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{**row, "time": as_utc(row["time"])} for row in rows]
