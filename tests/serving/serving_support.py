"""Test helpers for the inference server: the real `posture serve` in a subprocess on a free
port, WebSocket streaming helpers, and queries on the prediction store it writes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import websockets
from sqlalchemy import text

from pipelines.recording import Recording
from serving.store.db import make_engine
from tests.conftest import REPO

START_TIMEOUT_S = 90.0
CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``posture serve`` as a user runs it, against ``home`` with its own data dir (SQLite store)."""

    def __init__(
        self, home: Path, data_dir: Path, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/v1/stream"
        self.data_dir = data_dir
        self.database_url = (env or {}).get("POSTURE_DATABASE_URL") or f"sqlite:///{data_dir / 'predictions.db'}"
        self.log_path = data_dir / "server.log"
        full_env = {**os.environ, "POSTURE_HOME": str(home), "POSTURE_DATA_DIR": str(data_dir), **(env or {})}
        full_env.pop("MLFLOW_TRACKING_URI", None)
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "posture_cli", "serve", "--port", str(self.port), *args],
            env=full_env,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"posture serve exited {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"posture serve did not come up in {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """The server's JSON log lines (the one non-JSON line is the CLI's banner)."""
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def metric(self, name: str, **labels: str) -> float:
        """The value of one Prometheus sample from /metrics (0 when absent)."""
        wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            key, _, value = line.rpartition(" ")
            if key == wanted:
                return float(value)
        return 0.0

    def query(self, sql: str, **params: Any) -> list[Any]:
        engine = make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), params))
        finally:
            engine.dispose()

    def wait_rows(self, sql: str, expected: int, timeout: float = 20.0, **params: Any) -> int:
        """Poll ``sql`` (a COUNT) until it reaches ``expected``; returns the last count."""
        deadline = time.monotonic() + timeout
        count = -1
        while time.monotonic() < deadline:
            count = self.query(sql, **params)[0][0]
            if count >= expected:
                return count
            time.sleep(0.1)
        return count


def recording(home: Path, name: str, seconds: float | None = None) -> pd.DataFrame:
    """One recording of the ingested sample dataset: timestamp (from 0) and the six channels."""
    frame = pd.read_parquet(home / "data" / "datasets" / "sample" / "recordings.parquet")
    frame = frame[frame["recording"] == name][["timestamp", *CHANNELS]].reset_index(drop=True)
    frame["timestamp"] -= frame["timestamp"].iloc[0]
    if seconds is not None:
        frame = frame[frame["timestamp"] < seconds].reset_index(drop=True)
    return frame


def as_recording(frame: pd.DataFrame, name: str = "stream") -> Recording:
    return Recording(name, frame.copy(), source=name)


def json_frames(frame: pd.DataFrame, rows: int) -> Iterator[str]:
    """Sample frames of ``rows`` rows, each with its t0."""
    values = frame[CHANNELS].to_numpy()
    times = frame["timestamp"].to_numpy()
    for i in range(0, len(values), rows):
        yield json.dumps({"samples": values[i : i + rows].tolist(), "t0": float(times[i])})


def binary_frames(frame: pd.DataFrame, rows: int) -> Iterator[bytes]:
    values = frame[CHANNELS].to_numpy("<f4")
    for i in range(0, len(values), rows):
        yield values[i : i + rows].tobytes()


async def receive_until(ws: Any, count: int, kind: str = "prediction", timeout: float = 20.0) -> list[dict[str, Any]]:
    """The next ``count`` messages of ``kind`` (other kinds are skipped)."""
    out: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(out) < count:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                out.append(message)
    return out


async def stream(
    url: str, frames: list[Any], hello: dict[str, Any] | None = None, expect: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Open a session, send ``frames``, collect messages (until ``expect`` predictions, else
    until none came for 1 s), close. Returns (ready message, predictions, errors)."""
    async with websockets.connect(url, max_size=None) as ws:
        if hello is not None:
            await ws.send(json.dumps({"type": "hello", **hello}))
        sender = asyncio.create_task(_send_all(ws, frames))
        messages: list[dict[str, Any]] = []
        try:
            while expect is None or sum(m["type"] == "prediction" for m in messages) < expect:
                idle = 1.0 if sender.done() and expect is None else 20.0
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), idle)))
        except asyncio.TimeoutError:
            if expect is not None:
                raise
        await sender
    ready = next(m for m in messages if m["type"] == "ready")
    return ready, [m for m in messages if m["type"] == "prediction"], [m for m in messages if m["type"] == "error"]


async def _send_all(ws: Any, frames: list[Any]) -> None:
    for frame in frames:
        await ws.send(frame)


def expected_windows(n_samples: int, window: int = 100, hop: int = 50) -> int:
    return 0 if n_samples < window else (n_samples - window) // hop + 1


def probabilities(messages: list[dict[str, Any]], classes: list[str], key: str = "probabilities") -> np.ndarray:
    return np.array([[m[key][c] for c in classes] for m in messages])
