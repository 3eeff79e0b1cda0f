"""Engines and migrations of the prediction store (PostgreSQL via psycopg 3, or SQLite).

Alembic is driven from code: the environment ships in ``serving/store/migrations`` and no
alembic.ini is needed. The version table has its own name so the store can share a
database with MLflow (which keeps its own ``alembic_version``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from features.errors import PostureError

VERSION_TABLE = "posture_alembic_version"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_PG_MIGRATION_LOCK = 0x706F7374  # pg_advisory_xact_lock key: one migrator at a time
SQLITE_BUSY_MS = 10_000  # other users of a SQLite store wait this long on its write lock

# Bound how long a dead PostgreSQL can stall a write before the store spools instead.
_PG_CONNECT_ARGS = {
    "connect_timeout": 5,
    "application_name": "posture",
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}


@dataclass(frozen=True)
class StoreTimeouts:
    """Bounds on the prediction store's own PostgreSQL calls (POSTURE_DATABASE_*_TIMEOUT_S,
    POSTURE_STORE_CALL_TIMEOUT_S). Server-side: ``statement_timeout`` and ``lock_timeout``
    end a slow statement or a wait on a locked table with an error. Client-side:
    ``connect_s`` bounds a connect, and ``call_s`` (serving/store/bounded.py) bounds a whole
    transaction on the wall clock, for a network that accepts and then forwards nothing."""

    connect_s: float = 2.0
    statement_s: float = 1.5
    lock_s: float = 1.0
    call_s: float = 2.0

    @classmethod
    def of(cls, settings: Any) -> StoreTimeouts:
        return cls(
            connect_s=settings.database_connect_timeout_s,
            statement_s=settings.database_statement_timeout_s,
            lock_s=settings.database_lock_timeout_s,
            call_s=settings.store_call_timeout_s,
        )

    def connect_args(self) -> dict[str, Any]:
        return {
            **_PG_CONNECT_ARGS,
            "connect_timeout": max(2, math.ceil(self.connect_s)),  # libpq: whole seconds, 2 at least
            "options": f"-c statement_timeout={_ms(self.statement_s)} -c lock_timeout={_ms(self.lock_s)}",
        }


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class StoreUnavailableError(PostureError):
    """The prediction store's database cannot be reached or read."""


class SchemaError(PostureError):
    """The database schema is not the one this version of posture needs."""


class StoreUrlError(PostureError):
    """The prediction store's URL is not one posture can use."""


STORE_URL_FIX = (
    "set POSTURE_DATABASE_URL (--database-url) to postgresql://user:password@host/db or sqlite:///path/to/file.db."
)


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` -> ``postgresql+psycopg://`` (psycopg 3); a URL of
    another database, or no URL at all, is a ``StoreUrlError``."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018  (a port that is not a number raises only when read)
    except (ArgumentError, ValueError) as err:
        raise StoreUrlError("The prediction store's URL is not a database URL.", STORE_URL_FIX) from err
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        raise StoreUrlError(
            f"The prediction store's URL {redact(url)} is not PostgreSQL (psycopg) or SQLite.", STORE_URL_FIX
        )
    return parsed.render_as_string(hide_password=False)


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(a URL that does not parse)"


def make_engine(url: str, timeouts: StoreTimeouts | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url``: bounded connect timeouts on PostgreSQL, WAL on SQLite files.

    With ``timeouts`` (the prediction store's writer) every statement and lock wait is bounded
    too, and pooled connections are not pinged at checkout: a ping on a hung connection would
    block outside the writer's wall-clock bound, and a stale connection only costs one batch a
    trip to the spool, replayed a moment later."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        if timeouts is not None:
            return create_engine(url, connect_args=timeouts.connect_args(), **kwargs)
        return create_engine(url, pool_pre_ping=True, connect_args=dict(_PG_CONNECT_ARGS), **kwargs)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        busy_ms = _ms(timeouts.call_s) if timeouts is not None else SQLITE_BUSY_MS
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_ms=busy_ms))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_ms: int = SQLITE_BUSY_MS) -> None:
    # WAL lets `posture db stats` read while the server writes; wait on locks (bounded), don't fail.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.close()


def error_reason(err: BaseException) -> str:
    """The first line of a database error, for a one-line message."""
    lines = str(getattr(err, "orig", None) or err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def read_engine(settings: Any) -> Engine:
    """Engine for read-only queries: the replica when ``database_read_url`` is set."""
    return make_engine(settings.database_read_url or settings.database_url)


@contextlib.contextmanager
def connect(url: str, *, begin: bool = False) -> Iterator[Connection]:
    """A connection to ``url``; an unreachable database becomes one clear user error."""
    engine = make_engine(url)
    try:
        with engine.begin() if begin else engine.connect() as conn:
            yield conn
    except SQLAlchemyError as err:
        raise StoreUnavailableError(
            f"Cannot use the prediction store at {redact(url)}: {error_reason(err)}.",
            "start the database, or point POSTURE_DATABASE_URL (--database-url) at a reachable one.",
        ) from err
    finally:
        engine.dispose()


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest migration this code ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _revision_of(conn: Connection) -> str | None:
    return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def current_revision(url: str) -> str | None:
    """The database's migration revision; ``None`` for a database without our schema."""
    with connect(url) as conn:
        return _revision_of(conn)


def schema_is_current(url: str) -> bool:
    return current_revision(url) == head_revision()


def upgrade(url: str) -> tuple[str | None, str]:
    """Migrate ``url`` to head; returns (revision before, revision after). Idempotent."""
    config = _alembic_config()
    with _sqlite_file_lock(url), connect(url, begin=True) as conn:
        if conn.dialect.name == "postgresql":  # several workers may start at once
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = _revision_of(conn)
        _check_known(before, url)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return before, _revision_of(conn) or head_revision()


def _check_known(revision: str | None, url: str) -> None:
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(_alembic_config()).get_revision(revision)
    except CommandError as err:
        raise SchemaError(
            f"The prediction store at {redact(url)} is at revision {revision}, which this posture does not know.",
            "upgrade posture to the version that wrote it, or use another database.",
        ) from err


@contextlib.contextmanager
def _sqlite_file_lock(url: str) -> Iterator[None]:
    """SQLite has no advisory locks: serialise migrators of one file with flock."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        yield
        return
    lock_path = Path(parsed.database).expanduser().with_name(Path(parsed.database).name + ".migrate-lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def ensure_schema(url: str, auto_migrate: bool) -> None:
    """Server start: migrate a database that is behind, or refuse with the command to run."""
    current, head = current_revision(url), head_revision()
    if current == head:
        return
    if not auto_migrate:
        _check_known(current, url)
        raise SchemaError(
            f"The prediction store at {redact(url)} is at revision {current or 'none (empty)'}; "
            f"this posture needs {head}.",
            "run `posture db upgrade` (or set POSTURE_AUTO_MIGRATE=true).",
        )
    upgrade(url)
