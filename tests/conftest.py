"""Shared fixtures: a throwaway posture home, the real Prefect (temporary API) and MLflow."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipelines.registry import LoadedModel

REPO = Path(__file__).resolve().parents[1]

# Offline and quiet before anything imports Prefect or MLflow; a throwaway Prefect home.
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
os.environ.setdefault(
    "PREFECT_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"posture-tests-prefect-{os.getpid()}")
)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """The real Prefect API on a temporary database, shared by the whole session."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url  # subprocesses (the CLI) use it too
        yield url
        os.environ.pop("PREFECT_API_URL", None)


def make_home(root: Path) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "mlflow").mkdir(exist_ok=True)
    return root


@pytest.fixture
def posture_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty posture home (data/ and mlflow/) that Settings points at."""
    home = make_home(tmp_path / "home")
    monkeypatch.setenv("POSTURE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


def run_cli(*args: str, home: Path, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run ``posture ARGS`` as a user would, in a subprocess, against ``home``."""
    env = {**os.environ, "POSTURE_HOME": str(home), "COLUMNS": "200"}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "posture_cli", *args], env=env, capture_output=True, text=True, timeout=600, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(f"posture {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    """A home with the sample dataset ingested and a model trained and registered (once)."""
    home = make_home(tmp_path_factory.mktemp("trained") / "home")
    run_cli("ingest", "--sample", home=home)
    run_cli("train", "--trees", "40", home=home)
    return home


@pytest.fixture(scope="session")
def champion(trained_home: Path) -> LoadedModel:
    """Version 1 of the trained model, loaded in the test process (what `posture predict` uses)."""
    from pipelines.registry import load_model  # after the offline environment above is set
    from pipelines.settings import Settings

    return load_model("models:/posture/1", Settings(home=trained_home))
