"""Live accuracy per model version: served predictions that ground truth (the ``feedback``
table) covers, and how many of them were right.

A prediction is covered by a feedback row of its session whose stream range holds the whole
window, or by one of its device whose server-time range holds the prediction's time. A window
covered by several rows counts once, under the newest of them (a correction wins).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select

from serving.store.schema import Feedback, Prediction


def live_accuracy(conn: Connection, where: list[ColumnElement[bool]] | None = None) -> list[dict[str, Any]]:
    """``[{model_name, model_version, windows, correct, accuracy}]`` for versions with ground truth."""
    covers = or_(
        and_(
            Feedback.session_id == Prediction.session_id,
            Feedback.window_from <= Prediction.window_start,
            Prediction.window_end <= Feedback.window_to,
        ),
        and_(
            Feedback.device_hash == Prediction.device_hash,
            Feedback.time_from <= Prediction.time,
            Prediction.time <= Feedback.time_to,
        ),
    )
    newest = func.row_number().over(partition_by=Prediction.id, order_by=Feedback.id.desc()).label("newest")
    matched = (
        select(
            Prediction.model_name,
            Prediction.model_version,
            (Prediction.label == Feedback.label).label("right"),
            newest,
        )
        .join(Feedback, covers)
        .where(*(where or []))
        .subquery()
    )
    windows, correct = func.count(), func.sum(case((matched.c.right, 1), else_=0))
    rows = conn.execute(
        select(matched.c.model_name, matched.c.model_version, windows, correct)
        .where(matched.c.newest == 1)
        .group_by(matched.c.model_name, matched.c.model_version)
        .order_by(matched.c.model_name, matched.c.model_version)
    )
    return [
        {"model_name": name, "model_version": version, "windows": n, "correct": int(k or 0), "accuracy": (k or 0) / n}
        for name, version, n, k in rows
    ]
