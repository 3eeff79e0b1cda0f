"""Helpers of the fault-injection suite (tests/serving/test_faults.py): a small tmpfs to fill, a
redis-server of the test's own to kill, a PostgreSQL table lock that holds the server's
writer inside a statement (so a kill lands mid-COPY or mid-replay, not "about then"), and a
stream that counts the windows it was answered."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from tests.serving.serving_support import ServerProcess, free_port, receive_until
from tests.serving.store.store_helpers import ADMIN_DSN, PG_HOST, PG_PORT

HANG_S = 30.0  # guards against a hang; never a measure


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. "96k") mounted at ``path``: a disk that fills up (needs root)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    assert mounted.returncode == 0, f"mount tmpfs failed ({mounted.stderr.strip()}); the fault suite runs as root"
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of this test's own on a free port, killed at the end if still alive."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + HANG_S
        while not _answers_ping(port):
            assert process.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield process, f"redis://127.0.0.1:{port}/0"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def _answers_ping(port: int) -> bool:
    ping = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
    return ping.stdout.strip() == "PONG"


def database_dsn(database: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user=postgres dbname={database}"


@contextlib.contextmanager
def predictions_locked(database: str) -> Iterator[None]:
    """ACCESS EXCLUSIVE on ``predictions`` until the block ends: the writer's COPY waits inside."""
    with psycopg.connect(database_dsn(database)) as conn:
        conn.execute("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE")
        yield
        conn.rollback()


def waiting_copy(database: str) -> int:
    """The backend pid of the server's COPY into ``predictions``, once it waits on the lock."""
    query = (
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND query LIKE 'COPY predictions%%' "
        "AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + HANG_S
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        while not (rows := admin.execute(query, (database,)).fetchall()):
            assert time.monotonic() < deadline, "the server's COPY never reached the locked table"
            time.sleep(0.02)
    return int(rows[0][0])


def terminate_backend(pid: int) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def readyz(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/readyz", timeout=10.0).json()


def wait_ready(url: str, what: str, condition: Any) -> dict[str, Any]:
    """Poll /readyz until ``condition(body)``."""
    deadline = time.monotonic() + HANG_S
    while not condition(body := readyz(url)):
        assert time.monotonic() < deadline, f"/readyz never showed {what}: {body}"
        time.sleep(0.05)
    return body


def wait_event(server: ServerProcess, name: str) -> None:
    """Poll the server's log until it has an event ``name``."""
    deadline = time.monotonic() + HANG_S
    while not any(event["event"] == name for event in server.events()):
        assert time.monotonic() < deadline, f"the server never logged {name}"
        time.sleep(0.05)


class Stream:
    """One session of synthetic one-second frames (50 rows at 50 Hz, with their t0): after the
    first second, each frame completes one window (2 s windows, 1 s hop)."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.sent_s, self.session_id = ws, 0, ""
        self.predictions: list[dict[str, Any]] = []
        self._rng = np.random.default_rng(15)

    async def send(self, seconds: int) -> list[dict[str, Any]]:
        """Send ``seconds`` more; returns the windows they completed."""
        for _ in range(seconds):
            rows = np.asarray([0.1, 0.2, 9.7, 0.0, 0.0, 0.0]) + self._rng.normal(0, 0.05, (50, 6))
            await self.ws.send(json.dumps({"samples": rows.round(4).tolist(), "t0": float(self.sent_s)}))
            self.sent_s += 1
            if not self.session_id:
                self.session_id = (await receive_until(self.ws, 1, kind="ready"))[0]["session_id"]
        expected = self.sent_s - 1 - len(self.predictions)
        got = await receive_until(self.ws, expected, timeout=HANG_S)
        self.predictions += got
        return got
