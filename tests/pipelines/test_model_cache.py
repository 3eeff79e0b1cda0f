"""Remembered registry look-ups: hit without importing MLflow, void after any registry write."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.model_cache import Resolution, ResolutionCache
from pipelines.registry import connect
from pipelines.settings import Settings
from tests.conftest import REPO, run_cli

LOAD_IN_A_FRESH_PROCESS = r"""
import json, sys
from pathlib import Path
from pipelines.registry import load_model
from pipelines.settings import Settings
model = load_model(sys.argv[1], Settings(home=Path(sys.argv[2])))
print(json.dumps({"version": model.version, "alias": model.alias, "dir": str(model.local_dir),
                  "mlflow_imported": "mlflow" in sys.modules, "onnx": model.onnx_path is not None}))
"""


def load_in_fresh_process(uri: str, home: Path) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, uri, str(home)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=120,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_resolution_holds_until_the_database_file_changes(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"registry")
    cache = ResolutionCache(f"sqlite:///{database}")
    copy = tmp_path / "copy"
    copy.mkdir()
    cache.record("models:/posture@champion", Resolution("posture", "3", "champion", str(copy), cache.stamp()))
    assert cache.lookup("models:/posture@champion") == Resolution("posture", "3", "champion", str(copy), cache.stamp())
    assert cache.lookup("models:/posture@challenger") is None

    database.write_bytes(b"registry with the alias moved")
    assert cache.lookup("models:/posture@champion") is None


def test_a_deleted_copy_or_another_store_is_never_served_from_the_cache(tmp_path: Path) -> None:
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"registry")
    cache = ResolutionCache(f"sqlite:///{database}")
    cache.record("models:/posture/1", Resolution("posture", "1", None, str(tmp_path / "gone"), cache.stamp()))
    assert cache.lookup("models:/posture/1") is None
    assert not ResolutionCache("http://mlflow.internal:5000").enabled
    assert not ResolutionCache("postgresql://mlflow@db/mlflow").enabled


@pytest.fixture
def registry_copy(trained_home: Path, tmp_path: Path) -> Path:
    """A copy of the trained home's registry whose aliases this test may move."""
    home = tmp_path / "home"
    shutil.copytree(trained_home / "mlflow", home / "mlflow", ignore=shutil.ignore_patterns("posture-cache"))
    return home


def test_the_second_load_skips_mlflow_and_an_alias_move_is_seen(registry_copy: Path) -> None:
    first = load_in_fresh_process("models:/posture@champion", registry_copy)
    assert first["mlflow_imported"] and first["version"] == "1" and first["onnx"]
    second = load_in_fresh_process("models:/posture@champion", registry_copy)
    assert second == first | {"mlflow_imported": False}

    client = connect(Settings(home=registry_copy))
    original = client.get_model_version("posture", "1")
    client.create_model_version("posture", original.source, run_id=original.run_id)
    client.set_registered_model_alias("posture", "champion", "2")

    moved = load_in_fresh_process("models:/posture@champion", registry_copy)
    assert moved["version"] == "2" and moved["mlflow_imported"]
    assert Path(moved["dir"]).name == "2" and (Path(moved["dir"]) / "extra_files" / "spec.json").is_file()
    assert load_in_fresh_process("models:/posture@champion", registry_copy) == moved | {"mlflow_imported": False}


def test_promote_leaves_the_look_up_ready_for_the_next_predict(registry_copy: Path) -> None:
    run_cli("models", "promote", "1", "--alias", "champion", home=registry_copy)
    first = load_in_fresh_process("models:/posture@champion", registry_copy)
    assert first["version"] == "1" and not first["mlflow_imported"]
