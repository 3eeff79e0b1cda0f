"""Ground truth: the feedback table, and predictions looked up by session.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the column types in serving/store/schema.py.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("session_id", sa.String()),
        sa.Column("device_hash", sa.String(64)),
        sa.Column("window_from", sa.Float),
        sa.Column("window_to", sa.Float),
        sa.Column("time_from", Timestamp),
        sa.Column("time_to", Timestamp),
        sa.Column("label", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_session_id", "feedback", ["session_id"])
    op.create_index("ix_feedback_device_hash", "feedback", ["device_hash"])
    op.create_index("ix_predictions_session_id", "predictions", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_predictions_session_id", table_name="predictions")
    op.drop_table("feedback")
