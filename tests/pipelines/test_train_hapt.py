"""Real people: the committed UCI HAPT subset (3 users) through the real ingest and train flows.

Users 5 and 8 are trained on, leave-one-subject-out; user 11 is the held-out dataset.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from pipelines.registry import connect
from pipelines.settings import Settings
from tests.conftest import REPO, make_home, run_cli

SUBSET_ZIP = REPO / "tests" / "data" / "hapt" / "hapt-rawdata-3-users.zip"
SIX_ACTIVITIES = ["laying", "sitting", "standing", "walking", "walking_downstairs", "walking_upstairs"]


def raw_data_of(users: set[str], zip_path: Path, target: Path) -> Path:
    """A RawData folder with only ``users``' experiments (files and labels.txt rows)."""
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)
    raw = target / "RawData"
    for path in raw.glob("*_exp*_user*.txt"):
        if path.stem.rsplit("user", 1)[1] not in users:
            path.unlink()
    experiments = {p.stem.split("_")[1][3:] for p in raw.glob("acc_*.txt")}
    rows = [line for line in (raw / "labels.txt").read_text().splitlines() if line.split()[0].zfill(2) in experiments]
    (raw / "labels.txt").write_text("\n".join(rows) + "\n")
    return target


@pytest.fixture(scope="module")
def hapt_result(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("hapt")
    home = make_home(root / "home")
    run_cli("ingest", str(raw_data_of({"05", "08"}, SUBSET_ZIP, root / "train")), "--dataset", "hapt-train", home=home)
    run_cli("ingest", str(raw_data_of({"11"}, SUBSET_ZIP, root / "test")), "--dataset", "hapt-test", home=home)
    result = run_cli(
        "train", "--dataset", "hapt-train", "--test-dataset", "hapt-test", "--cv", "loso", "--json", home=home
    )
    return home, json.loads(result.stdout)


def test_real_people_are_recognised_above_a_floor(hapt_result: tuple[Path, dict]) -> None:
    _, result = hapt_result
    cv, test = result["cv"], result["test"]
    assert cv["scheme"] == "leave-one-subject-out (2 subjects)" and cv["classes"] == SIX_ACTIVITIES
    assert result["spec"]["feature_set_version"] == "imu-stats-4"
    # Measured 2026-12-05, the default (imu-stats-4, rotated copies): CV 0.908, smoothed 0.907; held-out
    # user 11: 0.991, smoothed 0.988. The previous default (imu-stats-3) scored CV 0.844 and held-out
    # 0.949, under these floors; imu-stats-2 without copies 0.725 in CV.
    # Two training people are few: on the 21 users of the shared copy, LOSO gives 0.967 (bench_quality).
    assert cv["accuracy"] > 0.85
    assert test["accuracy"] > 0.95
    assert 0.0 < cv["smoothed"]["accuracy"] <= 1.0 and 0.0 < test["smoothed"]["accuracy"] <= 1.0


def test_per_subject_accuracy_worst_first_in_json_and_mlflow(hapt_result: tuple[Path, dict]) -> None:
    home, result = hapt_result
    rows = result["cv"]["per_subject"]
    assert [row["subject"] for row in rows] in (["user05", "user08"], ["user08", "user05"])
    assert rows[0]["accuracy"] <= rows[1]["accuracy"]
    assert sum(row["windows"] for row in rows) == result["n_windows"]
    assert [row["subject"] for row in result["test"]["per_subject"]] == ["user11"]
    client = connect(Settings(home=home))
    run = client.get_run(client.get_model_version("posture", result["version"]).run_id)
    assert run.data.metrics["cv_worst_subject_accuracy"] == pytest.approx(rows[0]["accuracy"])
    assert run.data.metrics["cv_smoothed_accuracy"] == pytest.approx(result["cv"]["smoothed"]["accuracy"])
    import mlflow.artifacts

    logged = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id,
                artifact_path="evaluation/per_subject.json",
                tracking_uri=Settings(home=home).mlflow_tracking_uri,
            )
        ).read_text()
    )
    assert logged["per_subject"] == rows


def test_train_prints_the_per_subject_table(hapt_result: tuple[Path, dict], tmp_path: Path) -> None:
    home, _ = hapt_result
    result = run_cli(
        "train", "--dataset", "hapt-train", "--cv", "group-kfold:2", "--trees", "10", "--no-register", home=home
    )
    assert "accuracy per subject, worst first" in result.stdout and "user05" in result.stdout
    assert "GroupKFold(2) by subject" in result.stdout and "smoothed (forward filter)" in result.stdout


def test_an_unknown_cv_scheme_is_one_clear_error(hapt_result: tuple[Path, dict]) -> None:
    home, _ = hapt_result
    result = run_cli("train", "--dataset", "hapt-train", "--cv", "kfold", home=home, check=False)
    assert result.returncode != 0
    assert "Unknown cross-validation scheme 'kfold'" in result.stderr + result.stdout
    assert "group-kfold:N" in result.stderr + result.stdout and "Traceback" not in result.stderr


def test_an_imu_stats_1_model_still_predicts(hapt_result: tuple[Path, dict], tmp_path: Path) -> None:
    """A model of the old feature set, registered beside the new one, predicts a file with its own features."""
    import numpy as np
    import pandas as pd

    from features.contract import ALL_CHANNELS
    from features.extract import extract_features
    from features.windows import sliding_windows
    from pipelines.registry import load_model

    home, _ = hapt_result
    old = json.loads(
        run_cli(
            "train",
            "--dataset",
            "hapt-train",
            "--feature-set",
            "imu-stats-1",
            "--trees",
            "20",
            "--cv",
            "group-kfold:2",
            "--json",
            home=home,
        ).stdout
    )
    assert old["spec"]["feature_set_version"] == "imu-stats-1"
    frame = pd.read_parquet(home / "data" / "datasets" / "hapt-test" / "recordings.parquet")
    recording = frame[frame["recording"] == "exp22_user11"]
    source = tmp_path / "exp22.csv"
    recording[["timestamp", *ALL_CHANNELS]].to_csv(source, index=False)
    out = tmp_path / "exp22-predictions.csv"
    run_cli("predict", str(source), "--model", old["version"], "--out", str(out), home=home)
    predicted = pd.read_csv(out)
    model = load_model(f"models:/posture/{old['version']}", Settings(home=home))
    windows = sliding_windows(recording[list(ALL_CHANNELS)].to_numpy(np.float32), 100, 50)
    expected = model.estimator.predict(extract_features(windows, ALL_CHANNELS, 50.0))
    assert len(predicted) == len(windows) and list(predicted["label"]) == list(expected)
