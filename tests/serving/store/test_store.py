"""The prediction store on the real PostgreSQL of this machine and on SQLite: migrations,
pseudonymous rows, batching, a database outage in the middle, and a restart after one."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from features.errors import PostureError
from serving.store.anonymize import pseudonymize
from serving.store.db import (
    VERSION_TABLE,
    SchemaError,
    current_revision,
    ensure_schema,
    head_revision,
    make_engine,
    normalise_url,
    redact,
    schema_is_current,
    upgrade,
)
from serving.store.prediction_store import ConnectionRecord, PredictionStore
from serving.store.schema import Base
from tests.serving.store.store_helpers import (
    KEY,
    TcpProxy,
    empty_database,
    pg_url,
    record,
    sequence_in_table,
    throwaway_database,
    wait_for,
)

TABLES = {"predictions", "connections", "model_metrics", "api_keys", "spooled_batches"}


@pytest.fixture
def pg_database() -> Iterator[str]:
    with throwaway_database() as name:
        yield name


@pytest.fixture(params=["postgresql", "sqlite"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (no schema yet)."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store_url(fresh_url: str) -> str:
    upgrade(fresh_url)
    return fresh_url


# -- migrations -----------------------------------------------------------------------------


def test_migrations_create_the_schema_once(fresh_url: str) -> None:
    assert current_revision(fresh_url) is None
    assert not schema_is_current(fresh_url)
    assert upgrade(fresh_url) == (None, head_revision())
    assert schema_is_current(fresh_url)
    assert upgrade(fresh_url) == (head_revision(), head_revision())  # twice: a no-op
    engine = make_engine(fresh_url)
    with engine.connect() as conn:
        assert TABLES | {VERSION_TABLE} <= set(inspect(conn).get_table_names())
        # The migration and the models describe the same schema.
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        if conn.dialect.name == "postgresql":
            column = {c["name"]: c for c in inspect(conn).get_columns("predictions")}
            assert column["probabilities"]["type"].__class__.__name__ == "JSONB"
    engine.dispose()


def test_ensure_schema_migrates_or_refuses(fresh_url: str) -> None:
    with pytest.raises(SchemaError, match="posture db upgrade"):
        ensure_schema(fresh_url, auto_migrate=False)
    assert current_revision(fresh_url) is None
    ensure_schema(fresh_url, auto_migrate=True)
    assert schema_is_current(fresh_url)
    ensure_schema(fresh_url, auto_migrate=False)  # current: nothing to refuse


def test_unreachable_database_is_a_user_error() -> None:
    with pytest.raises(PostureError, match="Cannot use the prediction store"):
        current_revision("postgresql://postgres:secret@127.0.0.1:1/nowhere")


def test_urls_use_psycopg3_and_hide_passwords() -> None:
    assert normalise_url("postgresql://u:p@h:5/db") == "postgresql+psycopg://u:p@h:5/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert "secret" not in redact("postgresql://u:secret@h/db")
    assert redact("postgresql://u:secret@h:notaport/db") == "(a URL that does not parse)"


def test_pseudonyms_are_keyed_and_stable() -> None:
    first = pseudonymize("phone-42", KEY)
    assert first == pseudonymize("phone-42", KEY) and len(first) == 32 and int(first, 16) >= 0
    assert pseudonymize("phone-42", "another-key") != first
    assert pseudonymize(None, KEY) is None


# -- writes ---------------------------------------------------------------------------------


def test_rows_land_with_hashed_ids(store_url: str, tmp_path: Path) -> None:
    async def scenario() -> PredictionStore:
        store = PredictionStore(store_url, tmp_path / "spool", KEY, batch_size=50, flush_interval_s=0.05)
        await store.start()
        assert await store.ping()
        opened = datetime.now(UTC)
        store.add_connection(ConnectionRecord("session-1", "phone-42", "10.1.2.3", opened, None, 0, 0, 0, None))
        store.add_predictions([record(i) for i in range(120)])
        nan = record(120)
        nan.confidence, nan.probabilities = float("nan"), {"sitting": float("nan")}
        store.add_predictions([nan])
        store.add_connection(
            ConnectionRecord("session-1", "phone-42", "10.1.2.3", opened, datetime.now(UTC), 60, 121, 2, 1000)
        )
        store.add_model_metrics("posture", "3", {"cv_accuracy": 0.93, "cv_macro_f1": 0.91}, "sample")
        await store.close()
        return store

    store = asyncio.run(scenario())
    assert (store.rows_written, store.predictions_written, store.rows_dropped, store.queue_depth) == (125, 121, 0, 0)
    assert sequence_in_table(store_url) == list(range(121))
    engine = make_engine(store_url)
    with engine.connect() as conn:
        dump = json.dumps(
            [[list(row) for row in conn.execute(text(f"SELECT * FROM {table}"))] for table in sorted(TABLES)],
            default=str,
        )
        sessions = conn.execute(text("SELECT device_hash, client_hash, frames, errors, close_code FROM connections"))
        assert sessions.all() == [(pseudonymize("phone-42", KEY), pseudonymize("10.1.2.3", KEY), 60, 2, 1000)]
        hashes = conn.execute(text("SELECT DISTINCT device_hash FROM predictions")).scalars().all()
        metrics = conn.execute(text("SELECT metric, value FROM model_metrics ORDER BY metric")).all()
        last = conn.execute(text("SELECT confidence, probabilities FROM predictions ORDER BY id DESC")).first()
    engine.dispose()
    assert "phone-42" not in dump and "10.1.2.3" not in dump  # raw ids are never stored
    assert hashes == [pseudonymize("phone-42", KEY)]
    assert metrics == [("cv_accuracy", 0.93), ("cv_macro_f1", 0.91)]
    probabilities = last[1] if isinstance(last[1], dict) else json.loads(last[1])
    assert last[0] is None and probabilities == {"sitting": None}  # NaN stored as NULL


def test_many_small_adds_become_few_batches(pg_database: str, tmp_path: Path) -> None:
    url = pg_url(pg_database)
    upgrade(url)

    async def scenario() -> PredictionStore:
        store = PredictionStore(url, tmp_path / "spool", KEY, batch_size=500, flush_interval_s=0.25)
        await store.start()
        for seq in range(5000):  # one prediction per call, as sessions produce them
            store.add_predictions([record(seq)])
            if seq % 100 == 99:
                await asyncio.sleep(0)
        await store.close()
        return store

    store = asyncio.run(scenario())
    assert store.rows_written == 5000 and store.rows_spooled == 0
    assert 10 <= store.batches_written <= 12
    engine = make_engine(url)
    with engine.connect() as conn:  # rows of one transaction share xmin: count transactions
        transactions = conn.execute(text("SELECT count(DISTINCT xmin::text) FROM predictions")).scalar_one()
    engine.dispose()
    assert transactions == store.batches_written
    assert sequence_in_table(url) == list(range(5000))


def test_a_steady_trickle_is_written_once_an_interval(store_url: str, tmp_path: Path) -> None:
    """Rows that arrive while a partial batch is being written wait for the next interval:
    a steady trickle (a row every millisecond or so) is not written as one tiny batch after another."""

    async def scenario() -> tuple[PredictionStore, int]:
        store = PredictionStore(store_url, tmp_path / "spool", KEY, batch_size=500, flush_interval_s=0.2)
        await store.start()
        added = 0
        stop_at = time.monotonic() + 1.5
        while time.monotonic() < stop_at:
            store.add_predictions([record(added)])
            added += 1
            await asyncio.sleep(0.0005)
        await store.close()
        return store, added

    store, added = asyncio.run(scenario())
    assert store.rows_written == added and store.rows_spooled == 0
    # 1.5 s at one flush per 0.2 s interval, plus the one at close: at most ~9 batches.
    assert store.batches_written <= 12, f"{added} rows took {store.batches_written} batches"
    assert sequence_in_table(store_url) == list(range(added))


# -- outages and the spool ------------------------------------------------------------------


def test_outage_spools_then_replays_everything_in_order(pg_database: str, tmp_path: Path) -> None:
    upgrade(pg_url(pg_database))
    proxy = TcpProxy()

    async def scenario() -> PredictionStore:
        store = PredictionStore(
            pg_url(pg_database, proxy.port), tmp_path / "spool", KEY, batch_size=100, flush_interval_s=0.05
        )
        await store.start()
        seq = 0
        for phase in ("before", "outage", "after"):
            if phase == "outage":
                proxy.cut()
            if phase == "after":
                assert store.rows_spooled > 0 and store.backlog > 0 and not await store.ping()
                proxy.restore()
            for _ in range(30):
                store.add_predictions([record(seq + i) for i in range(20)])
                seq += 20
                await asyncio.sleep(0.01)
            if phase == "before":
                await wait_for(lambda: store.rows_written == seq)
            if phase == "outage":
                await wait_for(lambda: store.queue_depth == 0)
        await wait_for(lambda: store.backlog == 0 and store.queue_depth == 0)
        assert await store.ping()
        await store.close()
        return store

    try:
        store = asyncio.run(scenario())
    finally:
        proxy.close()
    assert sequence_in_table(pg_url(pg_database)) == list(range(1800))  # each row once, in order
    assert store.rows_written == 1800 and store.rows_dropped == 0 and store.rows_spooled >= 600
    assert list((tmp_path / "spool").rglob("*.jsonl")) == []


def test_close_during_outage_spools_and_next_start_replays(store_url: str, tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    proxy = TcpProxy() if store_url.startswith("postgresql") else None
    url = store_url.replace(":5432/", f":{proxy.port}/") if proxy else store_url

    async def during_outage() -> PredictionStore:
        store = PredictionStore(url, spool_dir, KEY, batch_size=100, flush_interval_s=10)
        await store.start()
        store.add_predictions([record(seq) for seq in range(250)])
        await store.close()  # the interval never elapsed: close() writes what is queued
        return store

    if proxy:
        proxy.cut()
    else:  # SQLite "outage": the file cannot be opened
        Path(store_url.removeprefix("sqlite:///")).rename(tmp_path / "moved.db")
        (tmp_path / "store" / "predictions.db").mkdir()
    first = asyncio.run(during_outage())
    assert (first.rows_written, first.rows_spooled, first.backlog, first.rows_dropped) == (0, 250, 250, 0)
    assert len(list(spool_dir.rglob("*.jsonl"))) == 1

    if proxy:
        proxy.restore()
    else:
        (tmp_path / "store" / "predictions.db").rmdir()
        (tmp_path / "moved.db").rename(store_url.removeprefix("sqlite:///"))

    async def next_run() -> PredictionStore:
        store = PredictionStore(url, spool_dir, KEY)
        assert store.backlog == 250
        await store.start()
        store.add_predictions([record(seq) for seq in range(250, 300)])  # newer rows wait their turn
        await wait_for(lambda: store.backlog == 0)
        await store.close()
        return store

    try:
        second = asyncio.run(next_run())
    finally:
        if proxy:
            proxy.close()
    assert second.rows_written == 300 and second.backlog == 0
    assert sequence_in_table(store_url) == list(range(300))
    assert list(spool_dir.rglob("*.jsonl")) == []
