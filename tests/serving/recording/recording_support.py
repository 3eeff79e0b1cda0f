"""Helpers of the recording tests: a home whose champion knows the synthetic postures, frames of
one posture, and a WebSocket conversation that collects every message."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.synthetic import SubjectProfile, generate_segment
from serving.recording.files import MANIFEST_FILE
from tests.conftest import make_home, run_cli
from tests.pipelines.incoming_data import write_subject

RATE_HZ = 50.0


def home_with_champion(root: Path) -> Path:
    """Four synthetic wearers -> `posture retrain` -> version 1, champion (3 trees, 1 s windows)."""
    home = make_home(root)
    for seed, subject in enumerate(("p1", "p2", "p3", "p4")):
        write_subject(home / "data/incoming", subject, seed=seed)
    first = json.loads(run_cli("retrain", "--trees", "3", "--window", "1", "--json", home=home).stdout)
    assert (first["version"], first["alias"]) == ("1", "champion"), first
    return home


def posture_frames(posture: str, seconds: float, seed: int, t_start: float = 0.0, rows: int = 50) -> list[str]:
    """JSON frames of ``rows`` samples at 50 Hz, each with its t0, of a wearer the model never saw."""
    rng = np.random.default_rng(seed)
    data = generate_segment(posture, SubjectProfile.random(rng, f"live{seed}"), seconds, RATE_HZ, rng)
    return [
        json.dumps({"samples": data[i : i + rows].tolist(), "t0": t_start + i / RATE_HZ})
        for i in range(0, len(data) - rows + 1, rows)
    ]


async def collect(ws: Any, quiet_s: float = 1.0) -> list[dict[str, Any]]:
    """Every message until none came for ``quiet_s``."""
    got = []
    while True:
        try:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), quiet_s)))
        except asyncio.TimeoutError:
            return got


def of_type(messages: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == kind]


def recorded_files(folder: Path, subject: str) -> dict[str, list[Path]]:
    """The Parquet files under ``folder/subject``, by label folder."""
    found: dict[str, list[Path]] = {}
    for path in sorted((folder / subject).glob("*/*.parquet")):
        found.setdefault(path.parent.name, []).append(path)
    return found


def wait_for_entries(folder: Path, subject: str, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
    """The manifest's entries of ``subject`` once there are ``count`` (a session's last file is
    written as it ends, after the client has gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        entries = [e for e in manifest(folder) if e["subject"] == subject]
        if len(entries) >= count or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def manifest(folder: Path) -> list[dict[str, Any]]:
    path = folder / MANIFEST_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
