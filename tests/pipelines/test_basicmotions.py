"""Real data: sktime's BasicMotions (accelerometer + gyroscope, 4 activities) through
`posture ingest` (.ts reader) and `posture train`, scored on its official test split."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import make_home, run_cli


def basicmotions_dir() -> Path:
    import sktime

    return Path(sktime.__file__).parent / "datasets" / "data" / "BasicMotions"


def test_basicmotions_official_split(tmp_path: Path, prefect_api: str) -> None:
    home = make_home(tmp_path / "home")
    folder = basicmotions_dir()
    for split in ("TRAIN", "TEST"):
        run_cli(
            "ingest",
            str(folder / f"BasicMotions_{split}.ts"),
            "--ts-rate",
            "10",
            "--rate",
            "10",
            "--dataset",
            f"bm-{split.lower()}",
            home=home,
        )
    manifest = json.loads((home / "data/datasets/bm-train/manifest.json").read_text())
    assert manifest["labels"] == ["Badminton", "Running", "Standing", "Walking"]
    assert len(manifest["recordings"]) == 40
    # Each case is 10 s at 10 Hz; one window per case, as peers classify whole series.
    result = json.loads(
        run_cli(
            "train",
            "--dataset",
            "bm-train",
            "--test-dataset",
            "bm-test",
            "--window",
            "10",
            "--hop",
            "10",
            "--json",
            home=home,
        ).stdout
    )
    assert result["test"]["scheme"] == "held-out dataset bm-test"
    assert sum(map(sum, result["test"]["confusion"])) == 40  # every official test case scored
    # Published results: most peers reach 100% on BasicMotions' test split (worst ~97.5%).
    assert result["test"]["accuracy"] >= 0.975, result["test"]
