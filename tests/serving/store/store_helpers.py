"""Test helpers for the prediction store: throwaway PostgreSQL databases on the real server
(127.0.0.1:5432), a TCP proxy in front of it whose cable a test can cut and restore, and
numbered records whose order can be checked in the table."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy import text

from serving.store.anonymize import pseudonymize
from serving.store.db import make_engine
from serving.store.prediction_store import PredictionRecord

PG_HOST, PG_PORT = "127.0.0.1", 5432
ADMIN_DSN = f"host={PG_HOST} port={PG_PORT} user=postgres dbname=test"
KEY = "test-anon-key"


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A new, empty database with a unique name; dropped (connections and all) afterwards."""
    name = f"posture_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_url(database: str, port: int = PG_PORT) -> str:
    return f"postgresql://postgres@{PG_HOST}:{port}/{database}"


@contextlib.contextmanager
def empty_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in ``folder``, or a throwaway PostgreSQL one."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'store' / 'predictions.db'}"
        return
    with throwaway_database() as name:
        yield pg_url(name)


def record(seq: int, device: str | None = "phone-42", label: str = "sitting") -> PredictionRecord:
    """A prediction whose ``window_start`` is its sequence number, to check order later."""
    return PredictionRecord(
        time=datetime.now(UTC),
        session_id="session-1",
        device_id=device,
        source="ws",
        model_name="posture",
        model_version="3",
        label=label,
        confidence=0.9,
        probabilities={"sitting": 0.9, "walking": 0.1},
        window_start=float(seq),
        window_end=seq + 2.0,
        latency_ms=1.5,
    )


def table_row(seq: int) -> dict[str, object]:
    """A predictions row as the store queues it (already pseudonymised)."""
    return {
        "time": datetime.now(UTC),
        "session_id": "session-1",
        "device_hash": pseudonymize("phone-42", KEY),
        "source": "http",
        "model_name": "posture",
        "model_version": "3",
        "label": "sitting",
        "confidence": 0.9,
        "probabilities": {"sitting": 0.9},
        "window_start": float(seq),
        "window_end": seq + 2.0,
        "latency_ms": 1.0,
    }


async def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the store"
        await asyncio.sleep(0.02)


def sequence_in_table(url: str) -> list[int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT window_start FROM predictions ORDER BY id")).scalars().all()
    engine.dispose()
    return [int(value) for value in rows]


class TcpProxy:
    """Forwards a free loopback port to PostgreSQL. ``cut()`` closes the listener and every
    forwarded connection (clients see resets and refusals, as in an outage); ``restore()``
    listens on the same port again. ``hang()`` keeps every connection open and accepts new
    ones but forwards nothing, either way (a network that swallows packets); ``unhang()``
    resets the connections that lived through it and forwards again. The real server is
    never touched."""

    def __init__(self, target: tuple[str, int] = (PG_HOST, PG_PORT)) -> None:
        self.target = target
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._hung = threading.Event()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self.port = self._listen(0)

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((PG_HOST, port))
        listener.listen(64)
        listener.settimeout(0.05)  # so the accept loop notices cut() promptly
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._acceptor.start()
        return listener.getsockname()[1]

    def _accept(self, listener: socket.socket) -> None:
        with listener:  # the accept thread owns (and closes) its listener
            while self._listener is listener:
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                if self._hung.is_set():  # accepted, never answered
                    with self._lock:
                        self._sockets.add(client)
                    continue
                upstream = socket.create_connection(self.target)
                with self._lock:
                    self._sockets.update((client, upstream))
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self._hung.is_set():  # hung: swallowed
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            with self._lock:
                self._sockets.discard(sock)

    def cut(self) -> None:
        self._listener = None
        if self._acceptor is not None:
            self._acceptor.join()  # listener closed: new connections are refused from here
        with self._lock:
            live = list(self._sockets)
        self._drop(*live)

    def restore(self) -> None:
        self._listen(self.port)

    def hang(self) -> None:
        self._hung.set()

    def unhang(self) -> None:
        with self._lock:
            stale = list(self._sockets)
        self._drop(*stale)  # their bytes were swallowed: these sessions cannot go on
        self._hung.clear()

    def close(self) -> None:
        self.cut()
