"""Drift scores in the store, on the real PostgreSQL and on SQLite: written by the store's writer
like every other row, read back for `posture drift report`, and spooled through an outage."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from serving.store.db import make_engine, upgrade
from serving.store.drift_scores import drift_scores
from serving.store.prediction_store import PredictionStore
from serving.store.records import DriftRecord
from tests.serving.store.store_helpers import KEY, TcpProxy, empty_database, pg_url, throwaway_database, wait_for

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def scoring(minute: int, psi: float, alarm: bool = False) -> list[DriftRecord]:
    time = T0 + timedelta(minutes=minute)
    bins = {"edges": [0.0, 1.0], "reference": [0.3, 0.4, 0.3], "live": [0.1, 0.2, 0.7]}
    return [
        DriftRecord(time, "posture", "3", "feature", "ax_mean", psi, 1.2, alarm, 2000, bins),
        DriftRecord(time, "posture", "3", "prediction", "", 0.1, 0.4, alarm, 2000),
        DriftRecord(time, "posture", "3", "confidence", "", float("nan"), 0.1, alarm, 2000),
    ]


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database(request.param, tmp_path) as url:
        upgrade(url)
        yield url


def read(url: str, **query: object) -> list[dict[str, object]]:
    engine = make_engine(url)
    try:
        return drift_scores(engine, **query)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_scores_are_written_and_read_back_oldest_first(store_url: str, tmp_path: Path) -> None:
    async def run() -> None:
        store = PredictionStore(store_url, tmp_path / "spool", KEY, batch_size=100, flush_interval_s=0.05)
        await store.start()
        store.add_drift_scores(scoring(5, 2.5, alarm=True))
        store.add_drift_scores(scoring(0, 0.3))
        await wait_for(lambda: store.rows_written >= 6)
        await store.close()

    asyncio.run(run())
    rows = read(store_url)
    assert [(r["time"], r["kind"]) for r in rows[:3]] == [(T0, "feature"), (T0, "prediction"), (T0, "confidence")]
    first = rows[0]
    assert (first["feature"], first["score"], first["threshold"], first["alarm"], first["windows"]) == (
        "ax_mean",
        0.3,
        1.2,
        False,
        2000,
    )
    assert first["bins"] == {"edges": [0.0, 1.0], "reference": [0.3, 0.4, 0.3], "live": [0.1, 0.2, 0.7]}
    assert rows[2]["score"] is None and rows[1]["bins"] is None  # NaN (no verdict) is stored as NULL
    assert [r["alarm"] for r in read(store_url, since=T0 + timedelta(minutes=1))] == [True] * 3
    assert read(store_url, model_version="4") == []


def test_scores_spool_while_postgresql_is_unreachable_and_replay_once(tmp_path: Path) -> None:
    proxy = TcpProxy()
    with throwaway_database() as name:
        upgrade(pg_url(name))

        async def run() -> PredictionStore:
            store = PredictionStore(pg_url(name, proxy.port), tmp_path / "spool", KEY, flush_interval_s=0.05)
            await store.start()
            proxy.cut()
            for minute in range(4):
                store.add_drift_scores(scoring(minute, 0.5 + minute))
            await wait_for(lambda: store.backlog == 12, timeout_s=30)
            proxy.restore()
            await wait_for(lambda: store.backlog == 0, timeout_s=30)
            await store.close()
            return store

        try:
            store = asyncio.run(run())
        finally:
            proxy.close()
        rows = read(pg_url(name))
    assert store.rows_dropped == 0 and len(rows) == 12
    assert [r["score"] for r in rows if r["kind"] == "feature"] == [0.5, 1.5, 2.5, 3.5]
    assert not any(isinstance(r["score"], float) and math.isnan(r["score"]) for r in rows)
