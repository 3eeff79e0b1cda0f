"""Ingest and train through the real Prefect flows and the real MLflow store in a temp folder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from features.feature_sets import featurize
from features.spec import WindowSpec
from pipelines.dataset import load_dataset
from pipelines.registry import connect, load_model
from pipelines.settings import Settings
from pipelines.windowing import window_dataset
from tests.conftest import make_home, run_cli


def settings_for(home: Path) -> Settings:
    return Settings(home=home)


def test_sample_manifest_is_labelled_synthetic(trained_home: Path) -> None:
    manifest = json.loads((trained_home / "data/datasets/sample/manifest.json").read_text())
    assert manifest["synthetic"] is True
    assert manifest["rate_hz"] == 50.0
    assert manifest["labels"] == ["lying", "running", "sitting", "standing", "walking"]
    assert len(manifest["subjects"]) == 8
    assert manifest["channels"] == ["ax", "ay", "az", "gx", "gy", "gz"]


def test_train_registers_a_champion_with_metrics(trained_home: Path) -> None:
    settings = settings_for(trained_home)
    client = connect(settings)
    version = client.get_model_version_by_alias("posture", "champion")
    assert str(version.version) == "1"
    assert float(version.tags["cv_macro_f1"]) > 0.9
    run = client.get_run(version.run_id)
    assert run.data.params["cv_scheme"] == "leave-one-subject-out (8 subjects)"  # --cv auto, 8 subjects
    assert run.data.metrics["cv_accuracy"] > 0.9
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "evaluation")}
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/cv.json",
        "evaluation/window_predictions.parquet",
    } <= artifacts


def test_champion_reproduces_the_flows_predictions(trained_home: Path) -> None:
    """Loading models:/posture@champion gives the fitted model's logged window predictions,
    and the logged out-of-fold predictions give the logged CV accuracy."""
    import mlflow.artifacts
    import pandas as pd

    settings = settings_for(trained_home)
    model = load_model("models:/posture@champion", settings)
    assert model.version == "1" and model.alias == "champion"
    assert model.onnx_path is not None and model.onnx_path.is_file()
    client = connect(settings)
    run_id = client.get_model_version("posture", "1").run_id
    logged = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation/window_predictions.parquet")
    )
    frame, _ = load_dataset(settings.dataset_dir("sample"))
    windowed = window_dataset(frame, model.spec)
    predicted = model.estimator.predict(featurize(windowed.windows, model.spec, windowed.contexts))
    assert np.array_equal(windowed.recordings.astype(str), logged["recording"].to_numpy())
    assert np.array_equal(predicted, logged["prediction"].to_numpy())
    cv_accuracy = (logged["cv_prediction"] == logged["label"]).mean()
    assert cv_accuracy == pytest.approx(client.get_run(run_id).data.metrics["cv_accuracy"])


def test_spec_travels_with_the_model(trained_home: Path) -> None:
    spec = load_model("models:/posture/1", settings_for(trained_home)).spec
    assert replace(spec, transitions=()) == WindowSpec(
        rate_hz=50.0,
        window_s=2.0,
        hop_s=1.0,
        channels=("ax", "ay", "az", "gx", "gy", "gz"),
        feature_set_version="imu-stats-4",
        classes=("lying", "running", "sitting", "standing", "walking"),
    )
    transitions = np.array(spec.transitions)  # the forward filter's, learned from the label sequences
    assert transitions.shape == (5, 5)
    np.testing.assert_allclose(transitions.sum(axis=1), 1.0)
    assert (transitions.argmax(axis=1) == np.arange(5)).all()  # staying is every class's likeliest move


def test_no_better_model_becomes_challenger_and_promote_moves_alias(
    tmp_path: Path, prefect_api: str, trained_home: Path
) -> None:
    home = make_home(tmp_path / "home")
    (home / "data").rmdir()
    (home / "data").symlink_to(trained_home / "data")  # reuse the ingested sample
    first = json.loads(run_cli("train", "--trees", "20", "--json", home=home).stdout)
    second = json.loads(run_cli("train", "--trees", "20", "--json", home=home).stdout)
    assert (first["alias"], second["alias"]) == ("champion", "challenger")  # a tie is not better
    assert second["cv"]["macro_f1"] == first["cv"]["macro_f1"]
    run_cli("models", "promote", second["version"], home=home)
    listed = json.loads(run_cli("models", "list", "--json", home=home).stdout)
    aliases = {row["version"]: row["aliases"] for row in listed}
    assert aliases[second["version"]] == ["challenger", "champion"]
    assert aliases[first["version"]] == []
    shown = json.loads(run_cli("models", "show", "champion", home=home).stdout)
    assert shown["version"] == second["version"]


def test_acc_only_training(tmp_path: Path, prefect_api: str, trained_home: Path) -> None:
    home = make_home(tmp_path / "home")
    (home / "data").rmdir()
    (home / "data").symlink_to(trained_home / "data")
    result = json.loads(run_cli("train", "--channels", "acc", "--trees", "20", "--json", home=home).stdout)
    assert result["spec"]["channels"] == ["ax", "ay", "az"]
    assert result["cv"]["accuracy"] > 0.9
