"""Ground truth in the store, on the real PostgreSQL and on SQLite: feedback rows go through the
writer, and live accuracy per model version counts the windows they cover."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from serving.store.db import make_engine, upgrade
from serving.store.live_accuracy import live_accuracy
from serving.store.prediction_store import PredictionStore
from serving.store.records import FeedbackRecord, PredictionRecord
from serving.store.schema import Feedback
from serving.store.stats import store_stats
from tests.serving.store.store_helpers import KEY, empty_database, record, wait_for

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database(request.param, tmp_path) as url:
        upgrade(url)
        yield url


def served(seq: int, label: str, version: str = "3", session: str = "session-1") -> PredictionRecord:
    """Window ``seq`` (stream seconds seq..seq+2), made at T0 + seq s."""
    return replace(
        record(seq, label=label), session_id=session, model_version=version, time=T0 + timedelta(seconds=seq)
    )


def write(url: str, folder: Path, predictions: list[PredictionRecord], feedback: list[FeedbackRecord]) -> None:
    async def run() -> None:
        store = PredictionStore(url, folder / "spool", KEY, batch_size=100, flush_interval_s=0.05)
        await store.start()
        store.add_predictions(predictions)
        for item in feedback:
            store.add_feedback(item)
        await wait_for(lambda: store.rows_written >= len(predictions) + len(feedback))
        await store.close()
        assert store.rows_dropped == 0 and store.backlog == 0

    asyncio.run(run())


def accuracy(url: str) -> list[dict[str, object]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return live_accuracy(conn)
    finally:
        engine.dispose()


def test_feedback_by_session_range_counts_the_windows_it_holds(store_url: str, tmp_path: Path) -> None:
    # Windows 0..9 of version 3: the first six say sitting, the rest walking.
    predictions = [served(k, "sitting" if k < 6 else "walking") for k in range(10)]
    # The wearer sat for stream seconds 0..9: windows 0..7 lie inside (window k ends at k + 2).
    write(store_url, tmp_path, predictions, [FeedbackRecord("session-1", None, "sitting", 0.0, 9.0)])
    assert accuracy(store_url) == [
        {"model_name": "posture", "model_version": "3", "windows": 8, "correct": 6, "accuracy": 6 / 8}
    ]
    engine = make_engine(store_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Feedback)).scalar_one() == 1
    summary = store_stats(engine)
    engine.dispose()
    assert summary["live_accuracy"][0]["windows"] == 8


def test_a_newer_correction_wins_and_device_ranges_use_server_time(store_url: str, tmp_path: Path) -> None:
    predictions = [served(k, "walking", version="4", session="s-2") for k in range(6)]
    feedback = [
        FeedbackRecord("s-2", None, "sitting", 0.0, 100.0),  # wrong at first...
        FeedbackRecord("s-2", None, "walking", 0.0, 100.0),  # ...then corrected: the newest counts
        # By device and server time: windows made at T0+0..T0+2 s, phone-42 (record's device).
        FeedbackRecord(None, "phone-42", "walking", time_from=T0, time_to=T0 + timedelta(seconds=2.5)),
        FeedbackRecord("another-session", None, "sitting", 0.0, 100.0),  # covers nothing here
    ]
    write(store_url, tmp_path, predictions, feedback)
    # 6 windows, each counted once under its newest covering row: all walking, all right.
    assert accuracy(store_url) == [
        {"model_name": "posture", "model_version": "4", "windows": 6, "correct": 6, "accuracy": 1.0}
    ]


def test_without_feedback_there_is_no_live_accuracy(store_url: str, tmp_path: Path) -> None:
    write(store_url, tmp_path, [served(k, "sitting") for k in range(3)], [])
    assert accuracy(store_url) == []
