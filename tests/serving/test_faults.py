"""Fault injection against the real `posture serve` (issue 15): each fault is placed exactly
(a full disk, a backend killed inside its COPY, a Redis killed between two frames, a SIGKILL
inside a replay transaction) and each test counts the rows: rows = predictions, each window once.

The suite's other outage tests, whose ideas these extend:
- tests/serving/store/test_store.py: the store alone through a PostgreSQL outage (spool, ordered replay) and a
  close during one (the next start replays);
- tests/serving/store/test_spool.py: replays interrupted after commit, or SIGKILLed midway, write once;
- tests/serving/stream/test_serve_stream.py: a PostgreSQL outage mid-stream (a cut TCP proxy) loses no row;
  SIGTERM closes sessions with 1001 and flushes every row;
- tests/deploy/test_deploy_redis.py: a stream goes on when the cable to Redis is cut.

The documented loss (docs/deployment.md, "Prediction store"): rows still in memory when the
process dies by SIGKILL (the last flush interval, 0.25 s, or up to one call timeout more while
the database hangs; prediction_log_queue_depth shows them), and, at a shutdown with the
database down and the spool's disk full, the rows neither takes (counted in
prediction_log_rows_dropped_total and logged as store_rows_dropped). Every row spooled before
a crash is replayed, once.

Issue 20 added: SIGTERM while the database hangs (a proxy that forwards nothing) or while
predictions is locked exits within 10 s with every row kept; a start while the database is
refused or hung serves, says degraded and replays; a database that refuses us stops the start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from redis import Redis

from tests.serving.fault_support import (
    HANG_S,
    Stream,
    predictions_locked,
    readyz,
    redis_server,
    terminate_backend,
    tmpfs,
    wait_event,
    wait_ready,
    waiting_copy,
)
from tests.conftest import REPO
from tests.serving.serving_support import ServerProcess, free_port
from tests.serving.store.store_helpers import TcpProxy, pg_url, throwaway_database

ROOMY = {
    "POSTURE_RATE_LIMIT_PER_S": "100000",
    "POSTURE_RATE_LIMIT_BURST": "100000",
    "POSTURE_LOG_FLUSH_INTERVAL_S": "0.05",
}  # these tests send faster than real time
SESSION_STARTS = "SELECT window_start FROM predictions WHERE session_id = :s ORDER BY id"
SESSION_ROWS = "SELECT COUNT(*) FROM predictions WHERE session_id = :s"


def _each_window_once(server: ServerProcess, session: str, total: int, fault: str) -> None:
    starts = [row[0] for row in server.query(SESSION_STARTS, s=session)]
    print(f"\n{fault}: {total} predictions, {len(starts)} rows, {total - len(starts)} lost")
    assert starts == [float(i) for i in range(total)], f"{len(starts)} rows for {total} predictions"


def _clean_log(server: ServerProcess, log: str | None = None) -> list[dict[str, Any]]:
    assert "Traceback" not in (log if log is not None else server.log())
    return server.events()


# -- the disk under the spool fills up during a database outage -------------------------------


def _full_disk_server(trained_home: Path, data: Path, database: str, proxy: TcpProxy, spool: Path) -> ServerProcess:
    env = {
        **ROOMY,
        "POSTURE_DATABASE_URL": pg_url(database, proxy.port),
        "POSTURE_SPOOL_DIR": str(spool),
        "POSTURE_LOG_BATCH_SIZE": "40",
    }  # ~15 KB a spooled batch: a few fit, then the disk is full
    return ServerProcess(trained_home, data, env=env)


def test_a_full_disk_under_the_spool_loses_no_row(trained_home: Path, tmp_path: Path) -> None:
    """Rows the full spool refuses wait in memory, first in line, until the database is back."""
    with throwaway_database() as database, tmpfs(tmp_path / "spool", "96k") as spool:
        proxy = TcpProxy()
        server = _full_disk_server(trained_home, tmp_path / "data", database, proxy, spool)
        try:
            session, total = asyncio.run(_outage_on_a_full_disk(server, proxy, recover=True))
            assert server.stop() == 0
        finally:
            server.kill()
            proxy.close()
        server.database_url = pg_url(database)
        _each_window_once(server, session, total, "full disk under the spool")
    failed = [e for e in _clean_log(server) if e["event"] == "store_spool_failed"]
    assert failed and all("No space left on device" in e["error"] for e in failed)
    assert not [e for e in server.events() if e["event"] == "store_rows_dropped"]


@pytest.mark.parametrize("database_back", [True, False], ids=["database-back", "database-down"])
def test_a_shutdown_on_a_full_disk_loses_only_what_nothing_takes(
    trained_home: Path, tmp_path: Path, database_back: bool
) -> None:
    """Database back: the rows the full spool refuses at close are written (out of order), the
    spooled ones replay at the next start: none lost. Still down: those rows are the documented
    loss, each one counted in store_rows_dropped."""
    with throwaway_database() as database, tmpfs(tmp_path / "spool", "96k") as spool:
        proxy = TcpProxy()
        first = _full_disk_server(trained_home, tmp_path / "data", database, proxy, spool)
        try:
            session, total = asyncio.run(_outage_on_a_full_disk(first, proxy, recover=False))
            if database_back:
                proxy.restore()
            assert first.stop() == 0
        finally:
            first.kill()
            proxy.close()
        dropped = sum(e["rows"] for e in _clean_log(first) if e["event"] == "store_rows_dropped")
        env = {**ROOMY, "POSTURE_DATABASE_URL": pg_url(database), "POSTURE_SPOOL_DIR": str(spool)}
        second = ServerProcess(trained_home, tmp_path / "data-2", env=env)
        try:
            wait_ready(second.url, "the spool replayed", lambda b: b["backlog"] == 0 and b["status"] == "ready")
            assert second.stop() == 0
        finally:
            second.kill()
        starts = sorted(row[0] for row in second.query(SESSION_STARTS, s=session))
    print(
        f"\nshutdown on a full disk ({'database back' if database_back else 'database down'}): {total} "
        f"predictions, {len(starts)} rows, {total - len(starts)} lost, {dropped} rows counted dropped"
    )
    assert len(starts) == len(set(starts))  # none twice
    if database_back:
        assert dropped == 0 and starts == [float(i) for i in range(total)]
    else:  # rows of every table are counted: each missing prediction is among them
        assert 0 < total - len(starts) <= dropped
    _clean_log(second)


async def _outage_on_a_full_disk(server: ServerProcess, proxy: TcpProxy, recover: bool) -> tuple[str, int]:
    async with websockets.connect(server.ws_url) as ws:
        stream = Stream(ws)
        await stream.send(5)
        assert await asyncio.to_thread(server.wait_rows, SESSION_ROWS, 4, s=stream.session_id) == 4
        proxy.cut()
        await stream.send(400)  # ~140 KB of spool lines for a 96 KB disk; the rest waits in memory
        await asyncio.to_thread(wait_ready, server.url, "a spool", lambda b: b["backlog"] > 0)
        await asyncio.to_thread(wait_event, server, "store_spool_failed")
        assert readyz(server.url)["database"] == "unreachable"
        if recover:
            proxy.restore()
            await asyncio.to_thread(
                wait_ready,
                server.url,
                "the spool replayed and the queue written",
                lambda b: b["backlog"] == 0 and server.metric("prediction_log_queue_depth") == 0,
            )
            await stream.send(5)  # and rows go straight to the database again
        return stream.session_id, len(stream.predictions)


# -- PostgreSQL kills the writer's backend inside its COPY ------------------------------------


def test_postgres_killed_mid_copy_loses_no_row(trained_home: Path, tmp_path: Path) -> None:
    with throwaway_database() as database:
        server = ServerProcess(trained_home, tmp_path / "data", env={**ROOMY, "POSTURE_DATABASE_URL": pg_url(database)})
        try:
            session, total = asyncio.run(_kill_inside_copy(server, database))
            assert server.stop() == 0
        finally:
            server.kill()
        _each_window_once(server, session, total, "backend killed mid-COPY")
    events = [e["event"] for e in _clean_log(server)]
    assert "store_database_unavailable" in events and "store_spool_replayed" in events


async def _kill_inside_copy(server: ServerProcess, database: str) -> tuple[str, int]:
    async with websockets.connect(server.ws_url) as ws:
        stream = Stream(ws)
        await stream.send(6)
        with predictions_locked(database):
            await stream.send(10)  # their COPY waits for the lock, inside its transaction
            terminate_backend(await asyncio.to_thread(waiting_copy, database))
        await stream.send(6)
        await asyncio.to_thread(wait_ready, server.url, "an empty spool", lambda b: b["backlog"] == 0)
        return stream.session_id, len(stream.predictions)


# -- Redis dies between two frames -------------------------------------------------------------


def test_redis_killed_mid_stream_falls_back_in_process(trained_home: Path, tmp_path: Path) -> None:
    """docs/deployment.md: limits go on per instance, state is not saved, no session fails."""
    with redis_server() as (redis, url):
        limits = {"POSTURE_REDIS_URL": url, "POSTURE_RATE_LIMIT_PER_S": "20", "POSTURE_RATE_LIMIT_BURST": "60"}
        server = ServerProcess(trained_home, tmp_path / "data", env=limits)
        try:
            session, total, flood_code = asyncio.run(_kill_redis_mid_stream(server, redis, url))
            assert _redis_errors(server) >= 1  # whichever call met the dead Redis first
            assert server.stop() == 0
        finally:
            server.kill()
    assert total == 19 and flood_code == 1008  # every window; the in-process bucket still limits
    _each_window_once(server, session, total, "redis-server SIGKILLed mid-stream")
    events = [e["event"] for e in _clean_log(server)]
    assert events.count("redis_unavailable") == 1 and "session_failed" not in events


def _redis_errors(server: ServerProcess) -> float:
    lines = httpx.get(f"{server.url}/metrics", timeout=10.0).text.splitlines()
    return sum(float(line.rpartition(" ")[2]) for line in lines if line.startswith("redis_errors_total{"))


async def _kill_redis_mid_stream(server: ServerProcess, redis: Any, url: str) -> tuple[str, int, int | None]:
    async with websockets.connect(server.ws_url) as ws:
        stream = Stream(ws)
        await stream.send(10)
        assert Redis.from_url(url).exists(f"posture:session:{stream.session_id}")  # Redis really in use
        redis.kill()  # SIGKILL: no goodbye on its sockets
        redis.wait()
        await stream.send(10)
    async with websockets.connect(server.ws_url) as flood:  # the same address: its bucket, now in-process
        try:
            for _ in range(200):
                await flood.send('{"samples": [[0.1, 0.2, 9.7, 0, 0, 0]]}')
            async with asyncio.timeout(HANG_S):
                async for _ in flood:
                    pass
        except websockets.ConnectionClosed:
            pass
    return stream.session_id, len(stream.predictions), flood.close_code


# -- SIGKILL inside a spool replay, then another instance replays the same spool ---------------


def test_sigkill_during_spool_replay_loses_and_repeats_no_row(trained_home: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with throwaway_database() as database:
        proxy = TcpProxy()
        env = {**ROOMY, "POSTURE_DATABASE_URL": pg_url(database, proxy.port)}
        first = ServerProcess(trained_home, data, env=env)
        try:
            session, total = asyncio.run(_spool_everything(first, proxy))
            with predictions_locked(database):
                proxy.restore()
                waiting_copy(database)  # the replay's transaction waits inside its COPY
                assert first.stop(signal.SIGKILL) == -signal.SIGKILL
        finally:
            first.kill()
            proxy.close()
        log = first.log()
        assert list((data / "spool").rglob("*.jsonl")), "the killed replay removed its segments"
        second = _replayed_by_a_new_server(trained_home, data, {**env, "POSTURE_DATABASE_URL": pg_url(database)})
        _each_window_once(second, session, total, "SIGKILL inside a spool replay")
    _clean_log(first, log)
    _clean_log(second)


def _replayed_by_a_new_server(home: Path, data: Path, env: dict[str, str]) -> ServerProcess:
    """A server on the same data dir (and so the same spool), stopped once it has replayed."""
    server = ServerProcess(home, data, env=env)
    try:
        wait_ready(server.url, "the spool replayed", lambda b: b["backlog"] == 0 and b["status"] == "ready")
        assert server.stop() == 0
    finally:
        server.kill()
    return server


async def _spool_everything(server: ServerProcess, proxy: TcpProxy) -> tuple[str, int]:
    async with websockets.connect(server.ws_url) as ws:
        stream = Stream(ws)
        await stream.send(3)
        await asyncio.to_thread(wait_ready, server.url, "the first rows written", lambda b: b["status"] == "ready")
        proxy.cut()
        await stream.send(30)
    # Every row on disk, none in memory: what a SIGKILL may lose is only what was never spooled.
    await asyncio.to_thread(
        wait_ready,
        server.url,
        "all rows spooled",
        lambda b: b["backlog"] >= 30 and server.metric("prediction_log_queue_depth") == 0,
    )
    assert readyz(server.url)["database"] == "unreachable"
    return stream.session_id, len(stream.predictions)


# -- issue 20: a hung database, a start while it is down, a database that refuses us ----------

SHUTDOWN_BOUND_S = 10.0  # docs/deployment.md: SIGTERM ends within 10 s (Docker's default), DB hung or not


def test_sigterm_while_the_database_hangs_exits_in_time_and_loses_no_row(trained_home: Path, tmp_path: Path) -> None:
    """The issue: a proxy that accepts and forwards nothing, then SIGTERM: no exit after 45 s.
    Now every call is bounded: the server exits 0 within the bound, with each row in the
    database or the spool, and the next start replays the spool."""
    data = tmp_path / "data"
    with throwaway_database() as database:
        proxy = TcpProxy()
        env = {**ROOMY, "POSTURE_DATABASE_URL": pg_url(database, proxy.port)}
        first = ServerProcess(trained_home, data, env=env)
        first.database_url = pg_url(database)  # the test's own queries go around the proxy
        try:
            session, total, code, took = asyncio.run(_sigterm_during_a_hang(first, proxy))
        finally:
            first.kill()
            proxy.close()
        stored = first.query(SESSION_ROWS, s=session)[0][0]
        spooled = sum(1 for path in (data / "spool").rglob("lane-*/*.jsonl") for _ in path.open())
        log = first.log()
        second = _replayed_by_a_new_server(trained_home, data, {**env, "POSTURE_DATABASE_URL": pg_url(database)})
        print(
            f"\nSIGTERM during a hang: exit {code} after {took:.2f} s; {stored} rows stored, {spooled} batches spooled"
        )
        _each_window_once(second, session, total, "SIGTERM while the database hangs")
    assert code == 0 and took < SHUTDOWN_BOUND_S
    assert spooled > 0  # the rows of the hang went to the spool, not nowhere
    _clean_log(first, log)


async def _sigterm_during_a_hang(server: ServerProcess, proxy: TcpProxy) -> tuple[str, int, int, float]:
    async with websockets.connect(server.ws_url) as ws:
        stream = Stream(ws)
        await stream.send(5)
        assert await asyncio.to_thread(server.wait_rows, SESSION_ROWS, 4, s=stream.session_id) == 4
        proxy.hang()
        await stream.send(20)  # predictions go on; their rows wait for a database that says nothing
        started = time.monotonic()
        code = await asyncio.to_thread(server.stop, signal.SIGTERM, HANG_S)
        return stream.session_id, len(stream.predictions), code, time.monotonic() - started


def test_sigterm_while_predictions_is_locked_exits_in_time_and_loses_no_row(trained_home: Path, tmp_path: Path) -> None:
    """The issue: an ACCESS EXCLUSIVE lock (VACUUM FULL, ALTER TABLE) left rows in memory,
    /readyz ready and SIGTERM taking 25 s. Now lock_timeout ends each write: the rows spool,
    /readyz says degraded with the reason, and SIGTERM exits within the bound."""
    data = tmp_path / "data"
    with throwaway_database() as database:
        env = {**ROOMY, "POSTURE_DATABASE_URL": pg_url(database)}
        first = ServerProcess(trained_home, data, env=env)
        try:
            session, total, during, code, took = asyncio.run(_sigterm_during_a_lock(first, database))
        finally:
            first.kill()
        stored = first.query(SESSION_ROWS, s=session)[0][0]
        second = _replayed_by_a_new_server(trained_home, data, env)
        print(f"\nSIGTERM during a table lock: exit {code} after {took:.2f} s; {stored} rows stored before")
        _each_window_once(second, session, total, "SIGTERM while predictions is locked")
    assert code == 0 and took < SHUTDOWN_BOUND_S
    assert during["database"] == "unreachable" and "lock timeout" in during["reasons"][0]
    _clean_log(first)


async def _sigterm_during_a_lock(server: ServerProcess, database: str) -> tuple[str, int, dict[str, Any], int, float]:
    async with websockets.connect(server.ws_url) as ws:
        stream = Stream(ws)
        await stream.send(5)
        assert await asyncio.to_thread(server.wait_rows, SESSION_ROWS, 4, s=stream.session_id) == 4
        with predictions_locked(database):
            await stream.send(10)
            during = await asyncio.to_thread(
                wait_ready, server.url, "degraded and spooling", lambda b: b["status"] == "degraded" and b["backlog"]
            )
            await stream.send(5)
            started = time.monotonic()
            code = await asyncio.to_thread(server.stop, signal.SIGTERM, HANG_S)
            took = time.monotonic() - started
        return stream.session_id, len(stream.predictions), during, code, took


@pytest.mark.parametrize("outage", ["refused", "hung"])
def test_a_server_starts_while_the_database_is_down(trained_home: Path, tmp_path: Path, outage: str) -> None:
    """Start, answer predictions, spool their rows and say "degraded" (200); once the database
    answers, create the schema, replay and say "ready"."""
    with throwaway_database() as database:  # empty: the schema is made once it answers
        proxy = TcpProxy()
        proxy.cut() if outage == "refused" else proxy.hang()
        server = ServerProcess(
            trained_home, tmp_path / "data", env={**ROOMY, "POSTURE_DATABASE_URL": pg_url(database, proxy.port)}
        )
        server.database_url = pg_url(database)
        try:
            answer = httpx.get(f"{server.url}/readyz", timeout=10.0)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["status"] == "degraded" and body["database"] == "unreachable"
            assert body["reasons"][0].startswith("store unreachable, spooling")
            session, total = asyncio.run(_stream_while_down(server))
            proxy.restore() if outage == "refused" else proxy.unhang()
            wait_ready(server.url, "the database back", lambda b: b["status"] == "ready" and b["backlog"] == 0)
            assert server.stop() == 0
        finally:
            server.kill()
            proxy.close()
        _each_window_once(server, session, total, f"start with the database {outage}")
    events = [e["event"] for e in _clean_log(server)]
    assert "store_unreachable_at_start" in events and "store_schema_checked" in events


async def _stream_while_down(server: ServerProcess) -> tuple[str, int]:
    async with websockets.connect(server.ws_url) as ws:
        stream = Stream(ws)
        await stream.send(12)
    # every row of the session (its predictions and its connection row) on disk
    await asyncio.to_thread(wait_ready, server.url, "the rows spooled", lambda b: b["backlog"] >= 11)
    assert server.metric("prediction_log_rows_spooled_total") >= 11
    return stream.session_id, len(stream.predictions)


def test_a_database_that_refuses_the_server_still_stops_the_start(trained_home: Path, tmp_path: Path) -> None:
    """Only unreachability degrades: a role the database does not know fails at once, in one line."""
    env = {
        **os.environ,
        "POSTURE_HOME": str(trained_home),
        "POSTURE_DATA_DIR": str(tmp_path / "data"),
        "POSTURE_DATABASE_URL": "postgresql://no_such_role@127.0.0.1:5432/test",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "posture_cli", "serve", "--port", str(free_port())],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert 'role "no_such_role" does not exist' in result.stderr and "Traceback" not in result.stderr
