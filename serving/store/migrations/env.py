"""Alembic environment: ``serving.store.db`` hands over an open connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from serving.store.db import VERSION_TABLE
from serving.store.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    # SQLite cannot ALTER most things; batch mode rebuilds tables for later migrations.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
