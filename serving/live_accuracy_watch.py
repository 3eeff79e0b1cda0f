"""Live accuracy in /metrics: read from the store on a schedule, never per request.

``posture_live_accuracy`` and ``posture_live_accuracy_windows`` per model version, from the
windows that ground truth (POST /v1/feedback) covers (serving/store/live_accuracy.py). The
query goes to the read replica when one is set, bounded like every store call.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from serving.logs import log_event
from serving.metrics import ServerMetrics
from serving.settings import ServerSettings
from serving.store.db import StoreTimeouts, make_engine
from serving.store.live_accuracy import live_accuracy


async def watch_live_accuracy(settings: ServerSettings, metrics: ServerMetrics) -> None:
    url = settings.database_read_url or settings.database_url
    assert url is not None
    engine = make_engine(url, StoreTimeouts.of(settings))
    try:
        while True:
            await asyncio.sleep(settings.live_accuracy_interval_s)
            await refresh_live_accuracy(engine, metrics)
    finally:
        engine.dispose()


async def refresh_live_accuracy(engine: Engine, metrics: ServerMetrics) -> None:
    try:
        rows = await asyncio.to_thread(_read, engine)
    except SQLAlchemyError as err:  # the database is down or slow: the gauges keep their last values
        log_event("live_accuracy_unavailable", logging.WARNING, error=str(err).splitlines()[0])
        return
    for row in rows:
        version = (row["model_name"], row["model_version"])
        metrics.live_accuracy.labels(*version).set(row["accuracy"])
        metrics.live_accuracy_windows.labels(*version).set(row["windows"])


def _read(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return live_accuracy(conn)
