"""A wall-clock bound on one store transaction, for a database that accepts and then says nothing.

``statement_timeout`` and ``lock_timeout`` bound what the server does, but a network that
swallows packets (a hung proxy, a half-open TCP connection behind a NAT) answers nothing at
all, and psycopg waits on its socket with no limit. So a timer cuts the socket
(``shutdown``, which wakes the waiting ``recv``) once ``timeout_s`` has passed: the call then
fails at once with ``StoreTimeoutError`` and the connection is discarded. The transaction never
committed, except in the one case no client can tell apart (the COMMIT reached the server and
its answer was lost), where the batch is spooled and written a second time.

A connect is bounded by ``connect_timeout`` (libpq), before the timer starts. SQLite has no
socket: its calls are bounded by ``busy_timeout`` instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

from sqlalchemy import Connection, Engine


class StoreTimeoutError(TimeoutError):
    """The database did not answer within the store's call timeout."""


class _Guard:
    """Cuts one connection's socket when the timer fires before ``disarm``."""

    def __init__(self, fd: int, timeout_s: float) -> None:
        self._fd = fd
        self._lock = threading.Lock()
        self._armed = True
        self.fired = False
        self._timer = threading.Timer(timeout_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:  # disarm() takes the lock too: the fd is still this connection's here
            if not self._armed:
                return
            self.fired = True
            with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self._fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)  # shared by the dup: psycopg's recv wakes up with EOF

    def disarm(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._armed = False


def _socket_fd(conn: Connection) -> int | None:
    pgconn = getattr(conn.connection.driver_connection, "pgconn", None)
    return None if pgconn is None else int(pgconn.socket)


@contextlib.contextmanager
def bounded_transaction(engine: Engine, timeout_s: float | None) -> Iterator[Connection]:
    """``engine.begin()``, but no longer than ``timeout_s`` once connected (None: unbounded)."""
    with engine.connect() as conn:
        fd = _socket_fd(conn) if timeout_s is not None else None
        guard = _Guard(fd, timeout_s) if fd is not None and timeout_s is not None else None
        try:
            with conn.begin():
                yield conn
        except Exception as err:
            if guard is not None and guard.fired:
                conn.invalidate()
                raise StoreTimeoutError(f"the database did not answer within {timeout_s:g} s") from err
            if not conn.invalidated and getattr(conn.connection.driver_connection, "broken", False):
                conn.invalidate()  # cut mid-COPY: never hand it back to the pool
            raise
        finally:
            if guard is not None:
                guard.disarm()
                if guard.fired and not conn.invalidated:
                    conn.invalidate()  # fired just as the commit returned: the socket is cut
