"""`posture predict` through Typer's runner and as a subprocess, on the trained sample model."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines.dataset import load_dataset
from pipelines.registry import connect
from pipelines.settings import Settings
from posture_cli.main import app
from tests.conftest import make_home, run_cli

CLASSES = ["lying", "running", "sitting", "standing", "walking"]


def recording_csv(home: Path, name: str, path: Path, columns: list[str] | None = None) -> Path:
    frame, _ = load_dataset(Settings(home=home).dataset_dir("sample"))
    part = frame[frame["recording"] == name]
    part[columns or ["timestamp", "ax", "ay", "az", "gx", "gy", "gz"]].to_csv(path, index=False)
    return path


@pytest.fixture
def runner(trained_home: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("POSTURE_HOME", str(trained_home))
    return CliRunner()


def test_predictions_match_the_training_flow_window_by_window(trained_home: Path, tmp_path: Path) -> None:
    """No drift: the CLI's predictions on a training recording equal the flow's own."""
    import mlflow.artifacts

    source = recording_csv(trained_home, "s03-mixed-2", tmp_path / "s03.csv")
    out = tmp_path / "s03.predictions.csv"
    run_cli("predict", str(source), "--out", str(out), home=trained_home)
    predicted = pd.read_csv(out)
    client = connect(Settings(home=trained_home))
    run_id = client.get_model_version("posture", "1").run_id
    logged = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation/window_predictions.parquet")
    )
    logged = logged[logged["recording"] == "s03-mixed-2"]
    merged = logged.merge(predicted, on="start", how="inner")
    assert len(merged) == len(logged) > 50  # every training window found by its start time
    assert (merged["prediction"] == merged["label_y"]).all()
    assert list(predicted.columns) == ["start", "end", "label", "confidence", *[f"p_{c}" for c in CLASSES]]
    np.testing.assert_allclose(predicted[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize("suffix,reader", [("csv", pd.read_csv), ("json", pd.read_json), ("parquet", pd.read_parquet)])
def test_each_output_format_from_the_extension(
    runner: CliRunner, trained_home: Path, tmp_path: Path, suffix, reader
) -> None:
    source = recording_csv(trained_home, "s01-walking", tmp_path / "walk.csv")
    out = tmp_path / f"out.{suffix}"
    result = runner.invoke(app, ["predict", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = reader(out)
    assert len(frame) == 59  # 60 s at 1 s hop, 2 s windows
    assert (frame["label"] == "walking").mean() > 0.9


def test_format_flag_overrides_extension(runner: CliRunner, trained_home: Path, tmp_path: Path) -> None:
    source = recording_csv(trained_home, "s01-lying", tmp_path / "lying.csv")
    out = tmp_path / "out.data"
    assert runner.invoke(app, ["predict", str(source), "--out", str(out), "--format", "json"]).exit_code == 0
    assert json.loads(out.read_text())[0]["label"] == "lying"


def test_stdout_piping_as_subprocess(trained_home: Path, tmp_path: Path) -> None:
    source = recording_csv(trained_home, "s02-sitting", tmp_path / "sit.csv")
    result = run_cli("predict", str(source), "--out", "-", home=trained_home)
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert len(frame) == 59 and (frame["label"] == "sitting").all()


def test_terminal_table_with_time_per_label(runner: CliRunner, trained_home: Path, tmp_path: Path) -> None:
    source = recording_csv(trained_home, "s01-running", tmp_path / "run.csv")
    result = runner.invoke(app, ["predict", str(source)])
    assert result.exit_code == 0
    assert "time per label" in result.output and "running" in result.output


def test_several_files_with_one_bad(runner: CliRunner, trained_home: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    recording_csv(trained_home, "s01-walking", inputs / "a.csv")
    recording_csv(trained_home, "s01-standing", inputs / "b.csv")
    (inputs / "c.csv").write_text("timestamp,foo\n0,1\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["predict", str(inputs), "--out", str(out)])
    assert result.exit_code == 1
    assert "c.csv" in result.output and "1 of 3 file(s) failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.predictions.csv", "b.predictions.csv"]


def test_missing_channels_names_them(runner: CliRunner, trained_home: Path, tmp_path: Path) -> None:
    source = recording_csv(trained_home, "s01-walking", tmp_path / "acc.csv", ["timestamp", "ax", "ay", "az"])
    result = runner.invoke(app, ["predict", str(source)])
    assert result.exit_code == 1
    assert "lacks channel(s) gx, gy, gz" in result.output and "accelerometer alone (--map)." in result.output


def test_too_short_recording(runner: CliRunner, tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    t = np.arange(50) / 50
    pd.DataFrame({"timestamp": t, "ax": 0.1, "ay": 9.8, "az": 0.2, "gx": 0.0, "gy": 0.0, "gz": 0.0}).to_csv(
        short, index=False
    )
    result = runner.invoke(app, ["predict", str(short)])
    assert result.exit_code == 1
    assert "shorter than one window (2.0 s" in result.output


def test_unknown_model(runner: CliRunner, trained_home: Path, tmp_path: Path) -> None:
    source = recording_csv(trained_home, "s01-walking", tmp_path / "w.csv")
    for reference, expected in (("99", "models:/posture/99"), ("nosuchalias", "models:/posture@nosuchalias")):
        result = runner.invoke(app, ["predict", str(source), "--model", reference])
        assert result.exit_code == 1
        assert f"No model at {expected}" in result.output


def test_smoothing_runs_the_models_forward_filter(runner: CliRunner, trained_home: Path, tmp_path: Path) -> None:
    from features.smoothing import EMISSION_FLOOR, ForwardFilter
    from pipelines.registry import load_model, resolve_model_uri

    source = recording_csv(trained_home, "s04-mixed-1", tmp_path / "m.csv")
    raw, smooth = tmp_path / "raw.csv", tmp_path / "smooth.csv"
    assert runner.invoke(app, ["predict", str(source), "--out", str(raw)]).exit_code == 0
    assert runner.invoke(app, ["predict", str(source), "--out", str(smooth), "--smooth"]).exit_code == 0
    raw_p = pd.read_csv(raw)[[f"p_{c}" for c in CLASSES]].to_numpy()
    smooth_p = pd.read_csv(smooth)[[f"p_{c}" for c in CLASSES]].to_numpy()
    spec = load_model(resolve_model_uri(None, Settings(home=trained_home)), Settings(home=trained_home)).spec
    assert len(spec.transitions) == len(CLASSES)  # learned at training, carried in the spec
    np.testing.assert_allclose(smooth_p, ForwardFilter.for_spec(spec).run(raw_p), atol=1e-4)
    first = raw_p[0] + EMISSION_FLOOR
    np.testing.assert_allclose(smooth_p[0], first / first.sum(), atol=1e-4)


def test_acc_only_model_on_acc_only_data(trained_home: Path, tmp_path: Path, prefect_api: str) -> None:
    home = make_home(tmp_path / "home")
    (home / "data").rmdir()
    (home / "data").symlink_to(trained_home / "data")
    run_cli("train", "--channels", "acc", "--trees", "20", home=home)
    source = recording_csv(trained_home, "s02-walking", tmp_path / "acc.csv", ["timestamp", "ax", "ay", "az"])
    result = run_cli("predict", str(source), "--out", "-", home=home)
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert (frame["label"] == "walking").mean() > 0.9


def test_several_files_to_stdout_share_one_header(runner: CliRunner, trained_home: Path, tmp_path: Path) -> None:
    a = recording_csv(trained_home, "s01-walking", tmp_path / "a.csv")
    b = recording_csv(trained_home, "s01-sitting", tmp_path / "b.csv")
    result = runner.invoke(app, ["predict", str(a), str(b), "--out", "-"])
    assert result.exit_code == 0
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert len(frame) == 118 and frame["file"].nunique() == 2
