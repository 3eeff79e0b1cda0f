"""UCI HAPT reader: the committed 3-user zip (counts, units, layouts), corrupted copies, the CLI."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.errors import DataError
from pipelines.readers import ReadOptions, read_recordings
from pipelines.recording import Recording
from posture_cli.main import app
from tests.conftest import REPO, make_home, run_cli

SUBSET_ZIP = REPO / "tests" / "data" / "hapt" / "hapt-rawdata-3-users.zip"
SUBSET_RECORDINGS = ["exp09_user05", "exp10_user05", "exp15_user08", "exp16_user08", "exp22_user11", "exp23_user11"]
SIX_ACTIVITIES = ["laying", "sitting", "standing", "walking", "walking_downstairs", "walking_upstairs"]
TRANSITIONS = ["lie_to_sit", "lie_to_stand", "sit_to_lie", "sit_to_stand", "stand_to_lie", "stand_to_sit"]


def bouts_table(copy: Path) -> np.ndarray:
    """labels.txt as integer rows ``experiment user activity first last``, read independently of the reader."""
    return np.loadtxt(copy / "RawData" / "labels.txt", dtype=int, ndmin=2)


def labelled_runs(recording: Recording) -> int:
    """How many contiguous runs of one label a recording holds (one per bout)."""
    labels = recording.frame["label"].to_numpy(dtype=object)
    labelled = recording.frame["label"].notna().to_numpy()
    starts = labelled & np.r_[True, (labels[1:] != labels[:-1]) | ~labelled[:-1]]
    return int(starts.sum())


def extracted_subset(tmp_path: Path) -> Path:
    """The committed zip extracted: ``tmp_path/hapt`` holding activity_labels.txt and RawData/."""
    with zipfile.ZipFile(SUBSET_ZIP) as archive:
        archive.extractall(tmp_path / "hapt")
    return tmp_path / "hapt"


def sample_lines(copy: Path) -> int:
    """Samples of every experiment, counted as lines of its accelerometer file (not by the reader)."""
    return sum(len(path.read_text().splitlines()) for path in (copy / "RawData").glob("acc_exp*_user*.txt"))


def test_subset_counts_and_units_with_transitions_kept(tmp_path: Path) -> None:
    # The committed subset, so a fresh clone needs no ../shared; bench/bench_quality.py checks
    # the 21-user copy's own figures (42 recordings, 849 bouts, 797,484 samples) when it reads it.
    copy = extracted_subset(tmp_path)
    recordings = read_recordings(copy, ReadOptions(keep_transitions=True))
    bouts = bouts_table(copy)
    lines = [line for line in (copy / "RawData" / "labels.txt").read_text().splitlines() if line.strip()]
    assert len(recordings) == 6 and len(bouts) == len(lines)
    assert {r.name for r in recordings} == {f"exp{e:02d}_user{u:02d}" for e, u in bouts[:, :2]}
    assert len({s for r in recordings for s in r.frame["subject"]}) == 3
    assert sum(labelled_runs(r) for r in recordings) == len(bouts)
    assert sum(len(r.frame) for r in recordings) == sample_lines(copy) == 96_775
    assert sum(int(r.frame["label"].notna().sum()) for r in recordings) == int((bouts[:, 4] - bouts[:, 3] + 1).sum())
    assert sorted({label for r in recordings for label in r.frame["label"].dropna()}) == sorted(
        SIX_ACTIVITIES + TRANSITIONS
    )
    acc = np.concatenate([r.frame[["ax", "ay", "az"]].to_numpy() for r in recordings])
    assert 9.5 < float(np.median(np.linalg.norm(acc, axis=1))) < 10.1  # g converted to m/s^2
    gyro = np.concatenate([r.frame[["gx", "gy", "gz"]].to_numpy() for r in recordings])
    assert float(np.percentile(np.linalg.norm(gyro, axis=1), 99)) < 10  # rad/s, not deg/s
    assert all(r.rejected == [] for r in recordings)


def test_by_default_only_the_six_activities_are_labelled(tmp_path: Path) -> None:
    copy = extracted_subset(tmp_path)
    recordings = {r.name: r for r in read_recordings(copy)}
    bouts = bouts_table(copy)
    activities = bouts[bouts[:, 2] <= 6]
    expected = int((activities[:, 4] - activities[:, 3] + 1).sum())
    assert sum(int(r.frame["label"].notna().sum()) for r in recordings.values()) == expected
    assert sorted({label for r in recordings.values() for label in r.frame["label"].dropna()}) == SIX_ACTIVITIES
    assert sum(len(r.frame) for r in recordings.values()) == sample_lines(copy)  # transitions stay in, unlabelled
    experiment, user, activity, first, last = bouts[0]  # the first bout of the first experiment
    frame = recordings[f"exp{experiment:02d}_user{user:02d}"].frame
    assert activity == 5 and set(frame["label"].iloc[first : last + 1]) == {"standing"}
    assert frame["label"].iloc[:first].isna().all()
    assert frame["subject"].eq(f"user{user:02d}").all()
    np.testing.assert_allclose(frame["timestamp"].iloc[:3], [0.0, 0.02, 0.04])


def test_subset_zip_reads_like_its_folder_and_its_raw_data_folder(tmp_path: Path) -> None:
    from_zip = read_recordings(SUBSET_ZIP)
    assert [r.name for r in from_zip] == SUBSET_RECORDINGS
    assert {s for r in from_zip for s in r.frame["subject"]} == {"user05", "user08", "user11"}
    assert sorted({label for r in from_zip for label in r.frame["label"].dropna()}) == SIX_ACTIVITIES
    assert sum(len(r.frame) for r in from_zip) == 96_775 and from_zip[0].source == str(SUBSET_ZIP)
    folder = extracted_subset(tmp_path)
    nested = tmp_path / "downloaded.zip"  # members under one top folder, as some downloads are
    with zipfile.ZipFile(nested, "w") as archive:
        for file in folder.rglob("*.txt"):
            archive.write(file, f"HAPT Data Set/{file.relative_to(folder).as_posix()}")
    # RawData alone has no activity_labels.txt beside it: the official names are used
    for other in (folder, folder / "RawData", nested):
        recordings = read_recordings(other)
        assert [r.name for r in recordings] == SUBSET_RECORDINGS, other
        for mine, theirs in zip(from_zip, recordings):
            pd.testing.assert_frame_equal(mine.frame, theirs.frame)


def test_subset_transitions_are_kept_on_request() -> None:
    kept = read_recordings(SUBSET_ZIP, ReadOptions(keep_transitions=True))
    labels = {label for r in kept for label in r.frame["label"].dropna()}
    assert labels == set(SIX_ACTIVITIES + TRANSITIONS)


def replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines))


def append_line(path: Path, text: str) -> int:
    """Append a line; return its number."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + text + "\n")
    return len(lines) + 1


def test_subset_nan_value_is_removed_and_reported_like_every_reader(tmp_path: Path) -> None:
    folder = extracted_subset(tmp_path)
    replace_line(folder / "RawData" / "gyro_exp09_user05.txt", 100, "NaN 0.1 0.2")
    first = read_recordings(folder)[0]
    [rejected] = first.rejected
    assert "NaN/inf or non-numeric value in gx" in rejected.reason and rejected.rows == [100]
    assert len(first.frame) == 16_864 - 1


def remove_gyro(raw: Path) -> str:
    (raw / "gyro_exp10_user05.txt").unlink()
    return f"{raw}/gyro_exp10_user05.txt: no such file (experiment 10)"


def bout_past_the_end(raw: Path) -> str:
    line = append_line(raw / "labels.txt", "10 5 1 15000 15038")  # the file has samples 0-15037
    return f"{raw}/labels.txt: line {line}: the bout ends at sample 15038, past the end of acc_exp10_user05.txt"


def garbage_value(raw: Path) -> str:
    replace_line(raw / "acc_exp10_user05.txt", 1234, "0.91 -0.1x 0.5")
    return f"{raw}/acc_exp10_user05.txt: line 1234: '-0.1x' is not a number"


def malformed_labels_line(raw: Path) -> str:
    replace_line(raw / "labels.txt", 3, "9 5 WALKING 10 20")
    return f"{raw}/labels.txt: line 3: expected 'experiment user activity first last'"


def extra_column(raw: Path) -> str:
    replace_line(raw / "gyro_exp10_user05.txt", 7, "0.1 0.2 0.3 0.4")
    return f"{raw}/gyro_exp10_user05.txt: Expected 3 fields in line 7, saw 4"


def lengths_differ(raw: Path) -> str:
    path = raw / "gyro_exp10_user05.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    return f"{raw}/acc_exp10_user05.txt + gyro_exp10_user05.txt: 15038 and 15037 lines"


@pytest.mark.parametrize(
    "corrupt", [remove_gyro, bout_past_the_end, garbage_value, malformed_labels_line, extra_column, lengths_differ]
)
def test_corrupted_copy_names_the_file_and_line(tmp_path: Path, corrupt: Callable[[Path], str]) -> None:
    raw = extracted_subset(tmp_path) / "RawData"
    expected = corrupt(raw)
    with pytest.raises(DataError) as err:
        read_recordings(raw)
    assert expected in err.value.problem, err.value.problem
    assert "UCI HAPT download" in err.value.fix


def ingest_manifest(home: Path, name: str, *flags: str) -> dict:
    run_cli("ingest", str(SUBSET_ZIP), "--dataset", name, "--json", *flags, home=home)
    return json.loads((home / "data" / "datasets" / name / "manifest.json").read_text())


def test_cli_ingests_the_subset_zip(tmp_path: Path, prefect_api: str) -> None:
    home = make_home(tmp_path / "home")
    manifest = ingest_manifest(home, "hapt3")
    assert manifest["subjects"] == ["user05", "user08", "user11"]
    assert manifest["labels"] == SIX_ACTIVITIES
    assert manifest["recordings"] == SUBSET_RECORDINGS and manifest["n_samples"] == 96_775
    assert manifest["rejected_files"] == {} and manifest["rejected_rows"] == []
    table = pd.read_parquet(home / "data" / "datasets" / "hapt3" / "recordings.parquet")
    assert table["label"].isna().any() and "None" not in set(table["label"].dropna())
    kept = ingest_manifest(home, "hapt3-transitions", "--hapt-transitions", "keep")
    assert kept["labels"] == sorted(SIX_ACTIVITIES + TRANSITIONS)


def test_cli_refuses_an_unknown_transitions_choice(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["ingest", str(SUBSET_ZIP), "--dataset", "x", "--hapt-transitions", "maybe"])
    assert result.exit_code == 2 and "maybe" in result.output


def test_subset_zip_stays_small() -> None:
    assert zipfile.is_zipfile(SUBSET_ZIP) and SUBSET_ZIP.stat().st_size < 4_000_000
