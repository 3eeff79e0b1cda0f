"""`posture retrain` end to end, on the real Prefect (temporary API) and a real MLflow store.

One posture home lives through the tests below in order, as it would over several nights:
a first champion from the incoming folder, a night without data, a worse challenger, a
better one (whose CV figures a server then records in a real PostgreSQL store), then the guards: a changed label set,
invalid data, and a run that fails after the dataset was written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.registry import connect
from pipelines.settings import Settings
from tests.conftest import make_home, run_cli
from tests.pipelines.incoming_data import write_subject
from tests.serving.store.store_helpers import pg_url, throwaway_database


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Path:
    home = make_home(tmp_path_factory.mktemp("retrain") / "home")
    for seed, subject in enumerate(("p1", "p2", "p3", "p4")):
        write_subject(home / "data/incoming", subject, seed=seed)
    return home


@pytest.fixture(scope="module")
def store_url() -> Iterator[str]:
    """A PostgreSQL prediction store migrated by the server's own Alembic migrations."""
    from serving.store.db import upgrade

    with throwaway_database() as name:
        upgrade(pg_url(name))
        yield pg_url(name)


def retrain(home: Path, *args: str, check: bool = True) -> Any:
    return run_cli("retrain", *args, home=home, check=check)


def retrain_json(home: Path, *args: str) -> dict[str, Any]:
    return json.loads(retrain(home, *args, "--json").stdout)


def aliases(home: Path) -> dict[str, str]:
    client = connect(Settings(home=home))
    return {alias: str(version) for alias, version in client.get_registered_model("posture").aliases.items()}


def versions(home: Path) -> int:
    return len(connect(Settings(home=home)).search_model_versions("name = 'posture'"))


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def manifest(home: Path) -> dict[str, Any]:
    return json.loads((home / "data/datasets/sample/manifest.json").read_text())


def test_first_run_creates_the_champion(home: Path) -> None:
    result = retrain_json(home, "--trees", "3", "--window", "1")
    assert (result["status"], result["version"], result["alias"]) == ("first champion", "1", "champion")
    assert result["n_subjects"] == 4
    assert manifest(home)["subjects"] == ["p1", "p2", "p3", "p4"]
    assert files_in(home / "data/incoming") == []
    assert len(files_in(home / "data/processed")) == 20
    assert not (home / "data/predictions.db").exists()
    assert aliases(home) == {"champion": "1"}


def test_no_new_data_does_nothing(home: Path) -> None:
    before = manifest(home)
    done = retrain(home)
    assert "no new data" in done.stdout and "champion posture v1 unchanged" in done.stdout
    assert manifest(home) == before
    assert versions(home) == 1


def test_worse_challenger_stays_challenger(home: Path) -> None:
    write_subject(home / "data/incoming", "p5", seed=5)
    result = retrain_json(
        home, "--trees", "1", "--window", "20", "--hop", "20", "--channels", "acc"
    )  # one window a recording
    assert (result["status"], result["alias"], result["version"]) == ("kept champion", "challenger", "2")
    assert result["challenger"]["macro_f1"] < result["champion"]["macro_f1"]
    assert result["champion"]["recipe"] == {
        "version": "1",
        "window_s": 1.0,
        "hop_s": 1.0,
        "channels": "ax,ay,az,gx,gy,gz",
        "trees": 3,
        "random_state": 0,
    }
    assert result["challenger"]["scheme"] == result["champion"]["scheme"]  # the same subject folds
    assert result["comparison"] == "champion recipe refit on the data it was trained on"
    assert aliases(home) == {"champion": "1", "challenger": "2"}
    run = connect(Settings(home=home)).get_run(result["run_id"])
    assert run.data.tags["posture.decision"] == "kept champion"
    assert run.data.params["champion_version"] == "1" and run.data.params["margin"] == "0.005"
    assert run.data.metrics["cv_macro_f1"] == pytest.approx(result["challenger"]["macro_f1"])
    assert run.data.metrics["champion_cv_macro_f1"] == pytest.approx(result["champion"]["macro_f1"])
    assert run.data.metrics["promoted"] == 0.0


def test_better_challenger_becomes_champion(
    home: Path, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also: feature extraction on a local Dask cluster, and the new version's CV figures, which
    reach the PostgreSQL store's model_metrics through the server (the table's one writer)."""
    from sqlalchemy import create_engine, text

    from pipelines.registry import load_model
    from tests.serving.serving_support import ServerProcess

    monkeypatch.setenv("POSTURE_DATABASE_URL", store_url)
    write_subject(home / "data/incoming", "p6", seed=6)
    result = retrain_json(home, "--trees", "30", "--runner", "dask")
    assert (result["status"], result["alias"], result["version"]) == ("promoted", "champion", "3")
    assert result["delta_macro_f1"] > 0.005
    assert aliases(home) == {"champion": "3", "challenger": "2"}
    run = connect(Settings(home=home)).get_run(result["run_id"])
    assert run.data.metrics["champion_cv_macro_f1"] == pytest.approx(result["champion"]["macro_f1"])
    carried = load_model("models:/posture/3", Settings(home=home))
    assert carried.offline_dataset == "sample"
    assert carried.offline_metrics["cv_macro_f1"] == pytest.approx(result["challenger"]["macro_f1"])

    def model_metrics() -> list[Any]:
        engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT model_version, metric, value, dataset FROM model_metrics")).all()
        engine.dispose()
        return rows

    assert model_metrics() == []  # a retrain writes no rows itself
    server = ServerProcess(home, tmp_path / "serve", env={"POSTURE_DATABASE_URL": store_url})
    assert server.stop() == 0  # the stop flushes what the server queued
    by_version = {(v, m): value for v, m, value, dataset in model_metrics() if dataset == "sample"}
    assert by_version == {("3", name): pytest.approx(value) for name, value in carried.offline_metrics.items()}


def test_changed_label_set_stops_before_anything_changes(home: Path) -> None:
    paths = write_subject(home / "data/incoming", "p7", seed=7, postures=("walking",))
    relabelled = home / "data/incoming/p7/cycling/p7-cycling.csv"
    relabelled.parent.mkdir(parents=True)
    shutil.copy(paths[0], relabelled)
    before = manifest(home)
    done = retrain(home, check=False)
    assert done.returncode == 1
    assert "cycling" in done.stderr and "label set" in done.stderr and "Traceback" not in done.stderr
    assert manifest(home) == before and versions(home) == 3
    assert files_in(home / "data/incoming") == ["p7/cycling/p7-cycling.csv", "p7/walking/p7-walking.csv"]
    shutil.rmtree(home / "data/incoming/p7")


def test_invalid_new_data_stops_before_anything_changes(home: Path) -> None:
    (path,) = write_subject(home / "data/incoming", "p8", seed=8, postures=("sitting",))
    frame = pd.read_csv(path)
    frame[["ax", "ay", "az"]] /= 9.80665  # in g, while m/s^2 is the contract
    frame.to_csv(path, index=False)
    before = manifest(home)
    done = retrain(home, check=False)
    assert done.returncode == 1
    assert "p8-sitting.csv" in done.stderr and "looks like g" in done.stderr
    assert manifest(home) == before and versions(home) == 3 and aliases(home)["champion"] == "3"
    assert files_in(home / "data/incoming") == ["p8/sitting/p8-sitting.csv"]
    shutil.rmtree(home / "data/incoming/p8")


def test_failed_run_keeps_files_and_alias_and_a_rerun_finishes(home: Path) -> None:
    write_subject(home / "data/incoming", "p9", seed=9)
    done = retrain(home, "--window", "10000", check=False)  # fails after the dataset was grown
    assert done.returncode == 1 and "longer than one window" in done.stderr
    grown = manifest(home)
    assert "p9" in grown["subjects"]
    assert len(files_in(home / "data/incoming")) == 5  # files leave only after a decision
    assert versions(home) == 3 and aliases(home) == {"champion": "3", "challenger": "2"}

    result = retrain_json(home, "--trees", "3")
    assert result["new_files"] == []  # already in the dataset: recognised by fingerprint, not added twice
    assert manifest(home)["n_samples"] == grown["n_samples"]
    assert result["version"] == "4" and files_in(home / "data/incoming") == []
    assert len(files_in(home / "data/processed")) == 35


def test_dask_runner_gives_the_features_of_the_local_runner(home: Path) -> None:
    """Feature extraction spread over a Dask cluster at an address equals the in-process run."""
    from distributed import LocalCluster

    from features.spec import WindowSpec
    from pipelines.featurize import featurize_flow, task_runner
    from pipelines.orchestration import run_flow

    dataset = str(home / "data/datasets/sample")
    spec = WindowSpec(rate_hz=50.0, window_s=2.0, hop_s=1.0)
    (local,) = run_flow(
        featurize_flow.with_options(task_runner=task_runner("local")), dataset_dir=dataset, specs=[spec]
    )
    with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster:
        runner = task_runner("dask", cluster.scheduler_address)
        (spread,) = run_flow(featurize_flow.with_options(task_runner=runner), dataset_dir=dataset, specs=[spec])
    assert np.array_equal(local.features, spread.features)
    assert np.array_equal(local.recordings, spread.recordings) and np.array_equal(local.labels, spread.labels)


def test_retrain_after_posture_train(trained_home: Path, tmp_path: Path) -> None:
    """A champion registered by `posture train` on the sample dataset: its recipe and data are found."""
    home = make_home(tmp_path / "home")
    shutil.copy(trained_home / "mlflow/mlflow.db", home / "mlflow/mlflow.db")  # artifacts stay in trained_home
    shutil.copytree(trained_home / "data/datasets/sample", home / "data/datasets/sample")
    write_subject(home / "data/incoming", "s09", seed=9)
    result = retrain_json(home, "--trees", "20")
    assert result["previous_champion_version"] == "1" and result["version"] == "2"
    assert result["comparison"] == "champion recipe refit on the data it was trained on"
    assert result["champion"]["recipe"]["trees"] == 40 and result["n_subjects"] == 9
    assert result["status"] in ("promoted", "kept champion")
