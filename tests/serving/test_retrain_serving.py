"""A retrain that promotes a new champion while `posture serve` streams to a WebSocket client:
the session keeps going and switches to the new version (with its own, longer windows)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import websockets

from pipelines.synthetic import SubjectProfile, generate_segment
from tests.conftest import make_home, run_cli
from tests.pipelines.incoming_data import write_subject
from tests.serving.serving_support import ServerProcess

TIMEOUT_S = 300.0


def walking_frames(rows: int = 50, seconds: float = 20.0) -> list[str]:
    """1 s frames of a wearer the models never saw, without t0 (the server counts samples)."""
    rng = np.random.default_rng(42)
    data = generate_segment("walking", SubjectProfile.random(rng, "live"), seconds, 50.0, rng)
    return [json.dumps({"samples": data[i : i + rows].tolist()}) for i in range(0, len(data) - rows + 1, rows)]


async def drain(ws: Any) -> list[dict[str, Any]]:
    """Every message already waiting (stops after 10 ms without one)."""
    got = []
    while True:
        try:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 0.01)))
        except asyncio.TimeoutError:
            return got


def test_running_server_switches_to_the_retrained_champion(tmp_path: Path, prefect_api: str) -> None:
    home = make_home(tmp_path / "home")
    for seed, subject in enumerate(("p1", "p2", "p3", "p4")):
        write_subject(home / "data/incoming", subject, seed=seed)
    first = json.loads(run_cli("retrain", "--trees", "3", "--window", "1", "--json", home=home).stdout)
    assert (first["version"], first["alias"]) == ("1", "champion")
    server = ServerProcess(home, tmp_path / "serve", env={"POSTURE_RELOAD_INTERVAL_S": "0.3"})
    outcome: dict[str, Any] = {}

    def retrain_tonight() -> None:
        write_subject(home / "data/incoming", "p5", seed=5)
        done = run_cli("retrain", "--trees", "30", "--margin", "0", "--json", home=home, check=False)
        outcome.update(json.loads(done.stdout) if done.returncode == 0 else {"error": done.stderr})

    retraining = threading.Thread(target=retrain_tonight, daemon=True)

    async def session() -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + TIMEOUT_S
        async with websockets.connect(server.ws_url) as ws:
            retraining.start()
            for frame in itertools.cycle(walking_frames()):
                await ws.send(frame)
                await asyncio.sleep(0.05)
                got.extend(await drain(ws))
                newer = sum(m.get("model_version") == "2" for m in got)
                if "error" in outcome or newer >= 5 or time.monotonic() > deadline:
                    break
        return got

    try:
        messages = asyncio.run(session())
        retraining.join(TIMEOUT_S)
    finally:
        assert server.stop() == 0
    assert outcome.get("status") == "promoted" and outcome["version"] == "2", outcome
    predictions = [m for m in messages if m["type"] == "prediction"]
    assert not [m for m in messages if m["type"] == "error"]
    versions = [m["model_version"] for m in predictions]
    switch = versions.index("2")
    assert switch > 0 and set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}
    widths = {m["model_version"]: m["window_end"] - m["window_start"] for m in predictions}
    assert widths == {"1": 1.0, "2": 2.0}  # each version windows with its own spec
    events = server.events()
    assert any(e["event"] == "model_reloaded" and e["version"] == "2" for e in events)
    assert any(e["event"] == "session_rewindowed" for e in events)
    # The server records each version's CV figures in model_metrics when it starts serving it.
    with sqlite3.connect(server.data_dir / "predictions.db") as db:
        offline = dict(
            db.execute("SELECT model_version, value FROM model_metrics WHERE metric = 'cv_macro_f1'").fetchall()
        )
    assert offline == {"1": first["challenger"]["macro_f1"], "2": outcome["challenger"]["macro_f1"]}
