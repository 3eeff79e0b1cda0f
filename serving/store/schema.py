"""The prediction store's tables (SQLAlchemy 2 declarative). Migrations in ``migrations/``
create them; these models are for queries and writes, never ``create_all``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Index, Integer, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONDocument = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a bigint sequence.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)  # stored in UTC; SQLite hands them back naive


def as_utc(moment: datetime | None) -> datetime | None:
    """Aware UTC; a naive datetime (as SQLite returns ``Timestamp`` columns) is taken to be UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Prediction(Base):
    """One window's prediction, from an HTTP request or a WebSocket session."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index(None, "time"),
        Index(None, "device_hash"),
        Index(None, "model_name", "model_version"),
        Index(None, "session_id"),  # ground truth is matched by session
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(Timestamp)
    session_id: Mapped[str | None] = mapped_column(String())
    device_hash: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # 'http' | 'ws'
    model_name: Mapped[str] = mapped_column(String())
    model_version: Mapped[str] = mapped_column(String())
    label: Mapped[str] = mapped_column(String())
    # Measurements are NULL when not finite (NaN is not valid JSON, and SQLite stores it as NULL).
    confidence: Mapped[float | None] = mapped_column(Float)
    probabilities: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    window_start: Mapped[float | None] = mapped_column(Float)
    window_end: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)


class Connection(Base):
    """One WebSocket session, written when it opens and again when it closes."""

    __tablename__ = "connections"

    session_id: Mapped[str] = mapped_column(String(), primary_key=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    client_hash: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    frames: Mapped[int] = mapped_column(BigInteger, default=0)
    predictions: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    close_code: Mapped[int | None] = mapped_column(Integer)


class ModelMetric(Base):
    """A metric of a model version: from registration (CV scores) or the server's counts."""

    __tablename__ = "model_metrics"
    __table_args__ = (Index(None, "model_name", "model_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String())
    model_version: Mapped[str] = mapped_column(String())
    metric: Mapped[str] = mapped_column(String())
    value: Mapped[float | None] = mapped_column(Float)
    dataset: Mapped[str | None] = mapped_column(String())
    recorded_at: Mapped[datetime] = mapped_column(Timestamp)


class Feedback(Base):
    """Ground truth sent back (POST /v1/feedback): the true label of a session's or a device's
    predictions in a range, by stream time (``window_from``/``window_to``, the windows' own
    seconds) or by server time (``time_from``/``time_to``). Predictions are matched to it when
    live accuracy is asked for; nothing in ``predictions`` is rewritten."""

    __tablename__ = "feedback"
    __table_args__ = (Index(None, "session_id"), Index(None, "device_hash"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(Timestamp)
    session_id: Mapped[str | None] = mapped_column(String())
    device_hash: Mapped[str | None] = mapped_column(String(64))
    window_from: Mapped[float | None] = mapped_column(Float)
    window_to: Mapped[float | None] = mapped_column(Float)
    time_from: Mapped[datetime | None] = mapped_column(Timestamp)
    time_to: Mapped[datetime | None] = mapped_column(Timestamp)
    label: Mapped[str] = mapped_column(String())


class DriftScore(Base):
    """One drift score of a model version's rolling window at one scoring (serving/drift):
    ``kind`` feature (PSI of ``feature``), prediction (label shares against the class prior)
    or confidence (drop in mean confidence). ``bins`` holds, for feature rows, the bin edges
    and the reference and live shares that `posture drift report` plots."""

    __tablename__ = "drift_scores"
    __table_args__ = (Index(None, "time"), Index(None, "model_name", "model_version"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(Timestamp)
    model_name: Mapped[str] = mapped_column(String())
    model_version: Mapped[str] = mapped_column(String())
    kind: Mapped[str] = mapped_column(String(16))
    feature: Mapped[str] = mapped_column(String())
    score: Mapped[float | None] = mapped_column(Float)  # NULL when too few finite values to say
    threshold: Mapped[float] = mapped_column(Float)
    alarm: Mapped[bool] = mapped_column(Boolean)  # the version's alarm after this scoring
    windows: Mapped[int] = mapped_column(Integer)
    bins: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)


class ApiKey(Base):
    """API keys for the server's auth (only the hash is kept)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(), unique=True)
    key_hash: Mapped[str] = mapped_column(String())
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    revoked_at: Mapped[datetime | None] = mapped_column(Timestamp)
    scopes: Mapped[str | None] = mapped_column(String())  # space-separated (serving.store.api_keys.KEY_SCOPES)


class SpooledBatch(Base):
    """Spooled batches already replayed: written in the same transaction as their rows, so a
    replay interrupted after commit but before the spool file is removed is not applied twice."""

    __tablename__ = "spooled_batches"

    batch_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    segment: Mapped[str] = mapped_column(String(), index=True)
    applied_at: Mapped[datetime] = mapped_column(Timestamp)
