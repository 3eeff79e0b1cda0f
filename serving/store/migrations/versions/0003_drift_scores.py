"""Drift monitoring: the drift_scores table (one row per score per scoring of a model version).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the column types in serving/store/schema.py.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)
JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "drift_scores",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("time", Timestamp, nullable=False),
        sa.Column("model_name", sa.String(), nullable=False),
        sa.Column("model_version", sa.String(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("feature", sa.String(), nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("alarm", sa.Boolean, nullable=False),
        sa.Column("windows", sa.Integer, nullable=False),
        sa.Column("bins", JSONDocument),
        sa.PrimaryKeyConstraint("id", name="pk_drift_scores"),
    )
    op.create_index("ix_drift_scores_time", "drift_scores", ["time"])
    op.create_index("ix_drift_scores_model_name_model_version", "drift_scores", ["model_name", "model_version"])


def downgrade() -> None:
    op.drop_table("drift_scores")
