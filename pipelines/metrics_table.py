"""Write a model version's metrics into the prediction store's ``model_metrics`` table.

The table belongs to the server's store (its Alembic migrations create it); pipelines never
import ``serving``, so the table is reflected by name with SQLAlchemy Core. Where the
store does not exist yet, nothing is created here: a log line says so and the rows are skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger("posture.retrain")

TABLE = "model_metrics"


def _make_engine(database_url: str) -> Any:
    """psycopg 3 for ``postgresql://`` URLs, as the store does; a bounded connect on PostgreSQL."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
    return create_engine(url, connect_args=connect_args)


def _missing_sqlite_file(database_url: str) -> bool:
    """A SQLite file that does not exist: connecting would create an empty one."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return (
        url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not Path(url.database).expanduser().is_file()
    )


def record_model_metrics(
    database_url: str | None, model_name: str, version: str, metrics: dict[str, float], dataset: str
) -> int:
    """Insert one row per metric; returns the number of rows written (0 when skipped)."""
    if not database_url or not metrics:
        return 0
    from sqlalchemy import MetaData, Table, insert
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

    from features.errors import PostureError

    where = make_url(database_url).render_as_string(hide_password=True)
    if _missing_sqlite_file(database_url):
        log.info("no prediction store at %s yet; skipped %d %s rows", where, len(metrics), TABLE)
        return 0
    engine = _make_engine(database_url)
    try:
        try:
            table = Table(TABLE, MetaData(), autoload_with=engine)
        except NoSuchTableError:
            log.info(
                "no %s table in %s (the store's migrations create it); skipped %d rows", TABLE, where, len(metrics)
            )
            return 0
        now = datetime.now(timezone.utc)
        rows = [
            {
                "model_name": model_name,
                "model_version": str(version),
                "metric": name,
                "value": float(value),
                "dataset": dataset,
                "recorded_at": now,
            }
            for name, value in sorted(metrics.items())
        ]
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
    except SQLAlchemyError as err:
        raise PostureError(
            f"Could not write {TABLE} rows to {where}: {err.__class__.__name__}: {err}".splitlines()[0],
            "start the database or point POSTURE_DATABASE_URL at it; no alias was moved.",
        ) from err
    else:
        log.info("recorded %d %s rows for %s version %s in %s", len(rows), TABLE, model_name, version, where)
        return len(rows)
    finally:
        engine.dispose()
