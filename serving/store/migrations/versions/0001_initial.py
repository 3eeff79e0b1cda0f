"""Initial prediction store: predictions, connections, model_metrics, api_keys, spooled_batches.

Revision ID: 0001
Revises:
Create Date: 2026-11-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the column types in serving/store/schema.py: a migration must not change
# when the models change later.
JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    _create_predictions()
    _create_connections()
    _create_model_metrics()
    _create_api_keys()
    _create_spooled_batches()


def _create_predictions() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("time", Timestamp, nullable=False),
        sa.Column("session_id", sa.String()),
        sa.Column("device_hash", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("probabilities", JSONDocument, nullable=False),
        sa.Column("window_start", sa.Float),
        sa.Column("window_end", sa.Float),
        sa.Column("latency_ms", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_time", "predictions", ["time"])
    op.create_index("ix_predictions_device_hash", "predictions", ["device_hash"])
    op.create_index("ix_predictions_model_name_model_version", "predictions", ["model_name", "model_version"])


def _create_connections() -> None:
    op.create_table(
        "connections",
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("device_hash", sa.String(64)),
        sa.Column("client_hash", sa.String(64)),
        sa.Column("opened_at", Timestamp, nullable=False),
        sa.Column("closed_at", Timestamp),
        sa.Column("frames", sa.BigInteger, nullable=False),
        sa.Column("predictions", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("close_code", sa.Integer),
        sa.PrimaryKeyConstraint("session_id", name="pk_connections"),
    )
    op.create_index("ix_connections_device_hash", "connections", ["device_hash"])
    op.create_index("ix_connections_opened_at", "connections", ["opened_at"])


def _create_model_metrics() -> None:
    op.create_table(
        "model_metrics",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("metric", sa.String(), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("dataset", sa.String()),
        sa.Column("recorded_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_metrics"),
    )
    op.create_index("ix_model_metrics_model_name_model_version", "model_metrics", ["model_name", "model_version"])


def _create_api_keys() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("revoked_at", Timestamp),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
    )


def _create_spooled_batches() -> None:
    op.create_table(
        "spooled_batches",
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("segment", sa.String(), nullable=False),
        sa.Column("applied_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name="pk_spooled_batches"),
    )
    op.create_index("ix_spooled_batches_segment", "spooled_batches", ["segment"])


def downgrade() -> None:
    for table in ("spooled_batches", "api_keys", "model_metrics", "connections", "predictions"):
        op.drop_table(table)
