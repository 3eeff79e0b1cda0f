"""What a failed store call means: the database refused the rows *as data* (quarantine them,
retrying cannot help) or the database is out of reach (spool the rows, retry later).

A data error is one that the same rows would meet again on any healthy database:
PostgreSQL's SQLSTATE classes 22 (data exception: a NUL in text, an invalid Unicode escape
in JSON), 23 (integrity constraint) and 54 (program limit: a key too long for its index),
psycopg's client-side ``DataError`` (it refuses NUL itself, before the COPY is sent), a text
that cannot be encoded (a lone surrogate), and SQLite's integrity/data errors. Everything
else (connection refused or cut, timeouts, ``query_canceled`` by statement_timeout,
``lock_not_available`` by lock_timeout, an admin shutdown, a missing table) is an outage:
the rows wait in the spool, in order, and are retried.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import psycopg

DATA_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
# Connection errors where the server answered, but only to say "not now".
_TRANSIENT_REFUSALS = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients",
    "remaining connection slots are reserved",
)


def _causes(err: BaseException) -> Iterator[BaseException]:
    """``err``, the driver error SQLAlchemy wraps (``.orig``), and its causes."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__


def is_data_error(err: BaseException) -> bool:
    """Whether the database refused these rows as data (see the module docstring)."""
    for cause in _causes(err):
        if isinstance(cause, UnicodeError):
            return True
        if isinstance(cause, psycopg.Error):
            state = cause.sqlstate
            if state:
                return state[:2] in DATA_SQLSTATE_CLASSES
            return isinstance(cause, psycopg.DataError)  # client-side: NUL in a text field
        if isinstance(cause, sqlite3.Error):
            return isinstance(cause, sqlite3.IntegrityError | sqlite3.DataError | sqlite3.InterfaceError)
    return False


def is_unreachable(err: BaseException) -> bool:
    """Whether a failed connect means "the database is not there now" (refused, timed out, a name
    that does not resolve yet, a server starting up), rather than a configuration the server
    rejected (a wrong password or role, a database that does not exist), which waiting cannot fix."""
    for cause in _causes(err):
        if isinstance(cause, psycopg.OperationalError):
            message = str(cause)
            if "FATAL:" not in message:  # the server never answered
                return True
            return any(refusal in message for refusal in _TRANSIENT_REFUSALS)
        if isinstance(cause, OSError | TimeoutError):
            return True
    return False
