"""The command tree itself: help, import discipline, settings, user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from pipelines.settings import Settings, find_home
from serving.settings import ServerSettings
from posture_cli.main import app
from tests.conftest import REPO, run_cli

HEAVY = ("prefect", "mlflow", "sklearn", "pandas", "numba")


def test_help_lists_the_command_tree() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("ingest", "train", "predict", "models"):
        assert command in result.output


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, runpy; sys.argv=['posture','--help']\n"
        "try:\n    runpy.run_module('posture_cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert "LOADED []" in out, out[-500:]


def test_settings_defaults_follow_home(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("POSTURE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db"
    assert settings.model_name == "posture"
    assert settings.dataset_dir("x") == tmp_path / "data" / "datasets" / "x"
    served = ServerSettings()  # the pipelines' settings and the server's own
    assert served.data_dir == settings.data_dir and served.spool_dir == tmp_path / "data" / "spool"
    assert served.database_url == settings.database_url == f"sqlite:///{tmp_path}/data/predictions.db"


def test_settings_env_and_overrides(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("POSTURE_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/m.db")
    monkeypatch.setenv("POSTURE_TREES", "7")
    assert Settings().mlflow_tracking_uri == "sqlite:////elsewhere/m.db"
    assert Settings().trees == 7
    assert Settings(trees=9, model_name="other").trees == 9


def test_find_home_walks_up_to_the_checkout(tmp_path: Path) -> None:
    assert find_home(REPO / "features") == REPO
    assert find_home(tmp_path) == tmp_path


def test_user_error_is_one_red_line_without_traceback(posture_home: Path) -> None:
    result = run_cli("train", "--dataset", "missing", home=posture_home, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "No dataset at" in result.stderr and "posture ingest" in result.stderr


def test_bad_mapping_option_names_the_fix(posture_home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "r.csv"
    csv.write_text("timestamp,ax,ay,az\n0,0,0,9.8\n")
    result = CliRunner().invoke(app, ["ingest", str(csv), "--dataset", "x", "--map", "ax"])
    assert result.exit_code == 1
    assert "CANONICAL=SOURCE" in result.output


def test_unknown_model_is_a_clear_error(posture_home: Path) -> None:
    result = run_cli("models", "show", "champion", home=posture_home, check=False)
    assert result.returncode == 1
    assert "No model at models:/posture@champion" in result.stderr
    assert "Traceback" not in result.stderr


def test_models_list_empty_registry_json(posture_home: Path) -> None:
    result = run_cli("models", "list", "--json", home=posture_home)
    assert json.loads(result.stdout) == []
