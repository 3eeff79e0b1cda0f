"""Drift tracking in a running `posture serve`, against a real Prefect API and PostgreSQL:
a shifted stream raises the alarm, which starts a run of the `retrain` deployment (once per
interval); the scores land in the store and `posture drift report` shows them. A version
trained before profiles existed serves with drift tracking off and says so."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from pipelines.registry import LoadedModel
from pipelines.synthetic_shifts import shifted_dataset
from tests.conftest import run_cli
from tests.serving.serving_support import CHANNELS, ServerProcess
from tests.serving.store.store_helpers import pg_url, throwaway_database

DRIFT_ENV = {
    "POSTURE_DRIFT_WINDOW": "200",
    "POSTURE_DRIFT_STEP": "100",
    "POSTURE_DRIFT_CHECK_INTERVAL_S": "0.2",
    "POSTURE_DRIFT_SUSTAIN_S": "0",
    "POSTURE_DRIFT_RETRAIN_INTERVAL_S": "3600",
}


@pytest.fixture(scope="module")
def retrain_deployment_id(prefect_api: str) -> UUID:
    """The `retrain` deployment registered in the test's Prefect API, as `posture schedule` does."""
    from pipelines.scheduling import retrain_deployment

    return retrain_deployment(None, {}).apply()


@pytest.fixture(scope="module")
def server(
    trained_home: Path, tmp_path_factory: pytest.TempPathFactory, retrain_deployment_id: UUID
) -> Iterator[ServerProcess]:
    with throwaway_database() as database:
        env = {**DRIFT_ENV, "POSTURE_DATABASE_URL": pg_url(database)}
        process = ServerProcess(trained_home, tmp_path_factory.mktemp("drift-server"), env=env)
        yield process
        assert process.stop() == 0


def post_recordings(server: ServerProcess, frame: Any) -> int:
    """Each recording in one /v1/predict request, as one device; the windows predicted."""
    windows = 0
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        for name, part in frame.groupby("recording", sort=False):
            body = {"samples": part[CHANNELS].to_numpy().tolist(), "rate_hz": 50, "device_id": str(name)}
            answer = http.post("/v1/predict", json=body)
            assert answer.status_code == 200, answer.text
            windows += len(answer.json()["predictions"])
    return windows


def wait_for(condition: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.2)
    return condition()


def event(server: ServerProcess, name: str) -> dict[str, Any] | None:
    return next((e for e in server.events() if e.get("event") == name), None)


def read_flow_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(UUID(run_id))

    return asyncio.run(read())


def test_a_shifted_stream_raises_the_alarm_and_starts_one_retrain_run(
    server: ServerProcess, retrain_deployment_id: UUID, trained_home: Path, tmp_path: Path
) -> None:
    assert server.metric("posture_drift_tracking", model_version="1") == 1
    windows = post_recordings(server, shifted_dataset("rotated", n_subjects=1, seed=21))
    assert windows >= 300  # the 200-window drift window fills, then at least one step more
    assert wait_for(lambda: server.metric("posture_drift_alarm", model_version="1") == 1), server.log()[-3000:]
    requested = wait_for(lambda: event(server, "drift_retrain_requested"))
    assert requested is not None, server.log()[-3000:]
    run = read_flow_run(requested["flow_run"])
    assert run.deployment_id == retrain_deployment_id and "drift" in run.tags
    alarm = event(server, "drift_alarm")
    assert alarm is not None and alarm["version"] == "1" and alarm["scores"]
    # More drifted windows: more scorings in alarm, but no second run within the interval.
    post_recordings(server, shifted_dataset("rotated", n_subjects=1, seed=22))
    assert wait_for(lambda: server.metric("posture_drift_retrains_total", outcome="rate_limited") >= 1)
    assert server.metric("posture_drift_retrains_total", outcome="started") == 1
    # Every score of every scoring is a row in the store, written by the store's writer.
    scorings = server.query("SELECT COUNT(DISTINCT time) FROM drift_scores WHERE alarm")[0][0]
    assert scorings >= 2
    kinds = dict(server.query("SELECT kind, COUNT(*) FROM drift_scores GROUP BY kind"))
    assert kinds["prediction"] == kinds["confidence"] and kinds["feature"] == 8 * kinds["prediction"]
    # The report: a table of the scores over time and a PNG.
    png = tmp_path / "report" / "drift.png"
    shown = run_cli(
        "drift", "report", "--since", "1h", "--out", str(png), "--database-url", server.database_url, home=trained_home
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert "ALARM" in shown.stdout and "predicted labels (JS)" in shown.stdout and str(png) in shown.stdout


def test_the_report_names_what_is_missing(trained_home: Path, server: ServerProcess) -> None:
    result = run_cli(
        "drift",
        "report",
        "--since",
        "2000-01-01",
        "--model-version",
        "99",
        "--database-url",
        server.database_url,
        home=trained_home,
        check=False,
    )
    assert result.returncode == 1 and "No drift scores" in result.stderr and "POSTURE_DRIFT_WINDOW" in result.stderr


def test_a_version_without_a_profile_serves_with_drift_tracking_off(
    champion: LoadedModel, trained_home: Path, tmp_path: Path
) -> None:
    older = tmp_path / "older-model"
    shutil.copytree(champion.local_dir, older)
    (older / "extra_files" / "drift_profile.json").unlink()
    process = ServerProcess(trained_home, tmp_path / "data", env=DRIFT_ENV, args=("--model", str(older)))
    try:
        assert process.metric("posture_drift_tracking", model_version="local") == 0
        post_recordings(process, shifted_dataset("rotated", n_subjects=1, seed=21))  # predicts as ever
        off = [e for e in process.events() if e.get("event") == "drift_tracking_off"]
        assert len(off) == 1 and "no drift profile" in off[0]["reason"]
        assert process.metric("posture_drift_alarm", model_version="local") == 0
    finally:
        assert process.stop() == 0
