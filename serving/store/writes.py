"""Synchronous batch writes of the prediction store; they run on the store's writer thread.

PostgreSQL gets predictions by COPY (one round trip per batch); SQLite by multi-row
INSERTs of a few hundred rows each. Either way the writer thread takes the GIL a few times
a batch, not once a row (an executemany steps SQLite once per row and drops the GIL around
each step, which the busy event loop's thread then has to hand back), and a row costs
~6 us of the writer's CPU on SQLite, against ~12 us through SQLAlchemy's executemany.

Connections are upserted by session id (a session is written when it opens and again when
it closes). Spooled batches are applied together with their batch ids so that replaying a
segment twice writes its rows once. Every call is bounded (serving/store/bounded.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from serving.store.bounded import bounded_transaction
from serving.store.schema import Connection as ConnectionRow
from serving.store.schema import DriftScore, Feedback, ModelMetric, Prediction, SpooledBatch
from serving.store.spool import Item

PREDICTION_COLUMNS = (
    "time",
    "session_id",
    "device_hash",
    "source",
    "model_name",
    "model_version",
    "label",
    "confidence",
    "probabilities",
    "window_start",
    "window_end",
    "latency_ms",
)
_COPY_PREDICTIONS = f"COPY predictions ({', '.join(PREDICTION_COLUMNS)}) FROM STDIN"
# Rows per SQLite INSERT: 12 columns x 400 stays far under its 32,766 bound variables.
SQLITE_ROWS_PER_INSERT = 400
_SQLITE_ROW = f"({', '.join('?' * len(PREDICTION_COLUMNS))})"


def write_batch(engine: Engine, items: list[Item], timeout_s: float | None = None) -> None:
    """Write one batch in one transaction (no longer than ``timeout_s``: serving/store/bounded.py)."""
    with bounded_transaction(engine, timeout_s) as conn:
        write_items(conn, items)


def write_items(conn: Connection, items: list[Item]) -> None:
    by_table: dict[str, list[dict[str, Any]]] = {
        "predictions": [],
        "connections": [],
        "model_metrics": [],
        "feedback": [],
        "drift_scores": [],
    }
    for table, row in items:
        by_table[table].append(row)
    if by_table["predictions"]:
        _insert_predictions(conn, by_table["predictions"])
    if by_table["connections"]:
        _upsert_connections(conn, by_table["connections"])
    if by_table["model_metrics"]:
        conn.execute(insert(ModelMetric), by_table["model_metrics"])
    if by_table["feedback"]:
        conn.execute(insert(Feedback), by_table["feedback"])
    if by_table["drift_scores"]:
        conn.execute(insert(DriftScore), by_table["drift_scores"])


def _insert_predictions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if conn.dialect.name == "sqlite":
        _insert_predictions_sqlite(conn, rows)
    elif conn.dialect.name == "postgresql":
        _copy_predictions(conn, rows)
    else:
        conn.execute(insert(Prediction), rows)


def _insert_predictions_sqlite(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Multi-row INSERTs on the transaction's own sqlite3 connection, with the values
    SQLAlchemy would store: ``Timestamp`` as "YYYY-MM-DD HH:MM:SS.ffffff" (UTC), JSON as text."""
    cursor = conn.connection.driver_connection.cursor()
    try:
        for start in range(0, len(rows), SQLITE_ROWS_PER_INSERT):
            chunk = rows[start : start + SQLITE_ROWS_PER_INSERT]
            values = [value for row in chunk for value in _sqlite_values(row)]
            cursor.execute(
                f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) VALUES {', '.join([_SQLITE_ROW] * len(chunk))}",
                values,
            )
    finally:
        cursor.close()


def _sqlite_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """The row's values in ``PREDICTION_COLUMNS`` order, written out as a tuple: this runs for
    every row on the writer thread, holding the GIL the event loop needs."""
    return (
        row["time"].isoformat(" ", "microseconds")[:26],  # "%Y-%m-%d %H:%M:%S.%f", ~5x faster than strftime
        row["session_id"],
        row["device_hash"],
        row["source"],
        row["model_name"],
        row["model_version"],
        row["label"],
        row["confidence"],
        orjson.dumps(row["probabilities"]).decode(),
        row["window_start"],
        row["window_end"],
        row["latency_ms"],
    )


def _copy_predictions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    from psycopg.types.json import Jsonb

    # COPY on the transaction's own psycopg connection: it commits or rolls back with it.
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(_COPY_PREDICTIONS) as copy:
        for row in rows:
            copy.write_row([Jsonb(row[name]) if name == "probabilities" else row[name] for name in PREDICTION_COLUMNS])


def _upsert_connections(conn: Connection, rows: list[dict[str, Any]]) -> None:
    # Each row is a full snapshot of its session, so the last one in the batch wins (and one
    # multi-row upsert may not touch the same key twice on PostgreSQL).
    latest = list({row["session_id"]: row for row in rows}.values())
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ConnectionRow)
    updated = {name: statement.excluded[name] for name in latest[0] if name != "session_id"}
    conn.execute(statement.on_conflict_do_update(index_elements=["session_id"], set_=updated), latest)


def applied_batches(engine: Engine, segment: str, timeout_s: float | None = None) -> set[str]:
    """The ids of a spool segment's batches already committed by an earlier replay."""
    with bounded_transaction(engine, timeout_s) as conn:
        return set(conn.scalars(select(SpooledBatch.batch_id).where(SpooledBatch.segment == segment)))


def replay_batch(
    engine: Engine, segment: str, batch_id: str, items: list[Item], timeout_s: float | None = None
) -> None:
    """Apply one spooled batch and its replay marker in one transaction: a replay that dies
    after the commit skips it next time. One batch (not a whole segment) a transaction keeps
    every replay call as short as a live write, so the same timeout bounds both."""
    with bounded_transaction(engine, timeout_s) as conn:
        if items:
            write_items(conn, items)
        conn.execute(
            insert(SpooledBatch), [{"batch_id": batch_id, "segment": segment, "applied_at": datetime.now(UTC)}]
        )


def forget_segment(engine: Engine, segment: str, timeout_s: float | None = None) -> None:
    """Drop the replay markers of a segment whose file is gone."""
    with bounded_transaction(engine, timeout_s) as conn:
        conn.execute(delete(SpooledBatch).where(SpooledBatch.segment == segment))
