"""`posture schedule`: the next run times it prints, a scheduled retrain that really runs, Ctrl-C."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from features.errors import PostureError
from pipelines.registry import connect
from pipelines.scheduling import make_schedule, next_runs
from pipelines.settings import Settings
from tests.conftest import REPO, make_home
from tests.pipelines.incoming_data import write_subject


def test_cron_next_runs_are_nightly_in_the_given_zone() -> None:
    runs = next_runs(make_schedule("0 3 * * *", None, "Europe/Berlin"))
    assert len(runs) == 3
    assert all((when.hour, when.minute) == (3, 0) and str(when.tzinfo) == "Europe/Berlin" for when in runs)
    assert [b - a for a, b in zip(runs, runs[1:])] in (
        [timedelta(days=1)] * 2,
        [timedelta(days=1), timedelta(hours=23)],
        [timedelta(days=1), timedelta(hours=25)],
    )


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(PostureError, match="cron"):
        make_schedule("every night", None, "UTC")
    with pytest.raises(PostureError, match="interval"):
        make_schedule(None, 0, "UTC")


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


def _wait(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_schedule_serves_retrain_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """Without PREFECT_API_URL: its own Prefect server; a run every 5 s, one at a time."""
    home = make_home(tmp_path / "home")
    for seed, subject in enumerate(("p1", "p2")):
        write_subject(home / "data/incoming", subject, seed=seed, seconds=10.0)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {"POSTURE_HOME": str(home), "POSTURE_TREES": "5", "COLUMNS": "200"}
    process = subprocess.Popen(
        [sys.executable, "-m", "posture_cli", "schedule", "--interval", "5"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "schedule.log").open("w"),
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        printed = []
        while not printed or "Ctrl-C" not in printed[-1]:
            printed.append(lines.get(timeout=120))
        runs = [datetime.fromisoformat(line.split("next run: ")[1].strip()) for line in printed if "next run:" in line]
        assert [b - a for a, b in zip(runs, runs[1:])] == [timedelta(seconds=5)] * 2
        processed = home / "data/processed"
        _wait(
            lambda: processed.is_dir() and not any((home / "data/incoming").rglob("*.csv")), 240, "a scheduled retrain"
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / "schedule.log").read_text()
    assert "stopped; the schedule is paused" in log and "Traceback" not in log
    client = connect(Settings(home=home))
    assert str(client.get_model_version_by_alias("posture", "champion").version) == "1"
