"""Readers: each format from small files written here, the real BasicMotions .ts, the folder layout."""

from __future__ import annotations

import zipfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import STANDARD_GRAVITY
from features.errors import DataError
from pipelines.readers import SUPPORTED_SUFFIXES, ReadOptions, read_recordings

SKTIME = Path(find_spec("sktime").submodule_search_locations[0])  # installed with the project; not imported
BASIC_MOTIONS = SKTIME / "datasets/data/BasicMotions/BasicMotions_TRAIN.ts"
NS = 1_700_000_000_000_000_000  # an epoch in ns, as Sensor Logger writes `time`


def imu(n: int = 50, rate_hz: float = 50.0) -> pd.DataFrame:
    t = np.arange(n) / rate_hz
    return pd.DataFrame({"timestamp": t, "ax": 0.5 * t, "ay": 0.2, "az": 9.8, "gx": t, "gy": -t, "gz": 0.1})


def test_generic_csv_with_canonical_columns(tmp_path: Path) -> None:
    imu().assign(label="walk", subject="s7").to_csv(tmp_path / "walk.csv", index=False)
    [rec] = read_recordings(tmp_path / "walk.csv")
    assert rec.name == "walk" and rec.source == str(tmp_path / "walk.csv") and rec.rejected == []
    assert rec.channels == ("ax", "ay", "az", "gx", "gy", "gz")
    assert set(rec.frame.label) == {"walk"} and set(rec.frame.subject) == {"s7"}
    np.testing.assert_allclose(rec.frame.gx, imu().gx)


def test_generic_map_and_units_are_applied(tmp_path: Path) -> None:
    raw = pd.DataFrame(
        {"ms": np.arange(10) * 20, "accX": 0.0, "accY": 0.0, "accZ": 1.0, "r": 90.0, "p": 0.0, "y": 0.0, "act": "sit"}
    )
    raw.to_csv(tmp_path / "a.csv", index=False)
    mapping = {"timestamp": "ms", "ax": "accX", "ay": "accY", "az": "accZ", "gx": "r", "gy": "p", "gz": "y"}
    options = ReadOptions(column_map={**mapping, "label": "act"}, acc_units="g", gyro_units="deg/s", time_units="ms")
    [rec] = read_recordings(tmp_path / "a.csv", options)
    np.testing.assert_allclose(rec.frame.timestamp, np.arange(10) * 0.02)
    np.testing.assert_allclose(rec.frame.az, STANDARD_GRAVITY)
    np.testing.assert_allclose(rec.frame.gx, np.pi / 2)
    assert set(rec.frame.label) == {"sit"}


def test_generic_common_spellings_and_time_unit_suffix(tmp_path: Path) -> None:
    raw = imu().rename(columns={"timestamp": "time_ms", "ax": "acc_x", "ay": "Acc_Y", "az": "accel z"})
    raw = raw.rename(columns={"gx": "gyro_x", "gy": "GyroY", "gz": "gyr_z"}).assign(time_ms=lambda f: f.time_ms * 1e3)
    raw.to_csv(tmp_path / "b.csv", sep=";", index=False)
    [rec] = read_recordings(tmp_path / "b.csv")
    np.testing.assert_allclose(rec.frame.timestamp, imu().timestamp)
    np.testing.assert_allclose(rec.frame.ax, imu().ax)


@pytest.mark.parametrize(("scale", "expected"), [(1.0, 0.02), (1e3, 0.02), (1e9, 0.02)])
def test_generic_time_units_inferred_from_steps(tmp_path: Path, scale: float, expected: float) -> None:
    raw = imu().assign(timestamp=lambda f: (1.7e9 + f.timestamp) * scale)
    raw.to_csv(tmp_path / "c.csv", index=False)
    [rec] = read_recordings(tmp_path / "c.csv")
    np.testing.assert_allclose(np.diff(rec.frame.timestamp), expected, rtol=1e-4)
    assert rec.frame.timestamp.iloc[0] == pytest.approx(1.7e9)


def test_generic_datetime_strings_and_missing_time_with_rate(tmp_path: Path) -> None:
    raw = imu(5).assign(timestamp=pd.date_range("2024-05-01 10:00", periods=5, freq="20ms").astype(str))
    raw.to_csv(tmp_path / "d.csv", index=False)
    [rec] = read_recordings(tmp_path / "d.csv")
    np.testing.assert_allclose(np.diff(rec.frame.timestamp), 0.02, atol=1e-6)
    imu(5).drop(columns="timestamp").to_csv(tmp_path / "e.csv", index=False)
    [rec] = read_recordings(tmp_path / "e.csv", ReadOptions(rate_hz=25))
    np.testing.assert_allclose(rec.frame.timestamp, np.arange(5) / 25)


def test_generic_bad_map_is_named(tmp_path: Path) -> None:
    imu().to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(DataError, match="column map ax=accX: no such column") as err:
        read_recordings(tmp_path / "f.csv", ReadOptions(column_map={"ax": "accX"}))
    assert "timestamp, ax, ay" in err.value.problem
    with pytest.raises(DataError, match="unknown channel\\(s\\) mx"):
        read_recordings(tmp_path / "f.csv", ReadOptions(column_map={"mx": "ax"}))


def test_parquet_with_recording_column_splits(tmp_path: Path) -> None:
    frame = pd.concat([imu(10).assign(recording="r1", label="a"), imu(10).assign(recording="r2", label="b")])
    frame.to_parquet(tmp_path / "set.parquet", index=False)
    recs = read_recordings(tmp_path / "set.parquet")
    assert [(r.name, len(r.frame), set(r.frame.label)) for r in recs] == [("r1", 10, {"a"}), ("r2", 10, {"b"})]
    assert "recording" not in recs[0].frame.columns


def sensor_csv(path: Path, start_s: float, n: int, rate_hz: float, xyz: tuple) -> None:
    """A Sensor Logger sensor file (its real column order is z, y, x)."""
    t = start_s + np.arange(n) / rate_hz
    x, y, z = (np.broadcast_to(v(t) if callable(v) else v, t.shape) for v in xyz)
    table = pd.DataFrame({"time": (NS + t * 1e9).astype(np.int64), "seconds_elapsed": t, "z": z, "y": y, "x": x})
    table.to_csv(path, index=False)


def sensorlogger_folder(folder: Path, total: bool = True, gravity: bool = False) -> Path:
    folder.mkdir(parents=True)
    if total:
        sensor_csv(folder / "TotalAcceleration.csv", 0.0, 100, 100, (0.1, 0.2, 9.8))
    else:
        sensor_csv(folder / "Accelerometer.csv", 0.0, 100, 100, (0.1, 0.2, -0.2))
    if gravity:
        sensor_csv(folder / "Gravity.csv", 0.0, 100, 100, (0.0, 0.0, 10.0))
    sensor_csv(folder / "Gyroscope.csv", 0.105, 80, 100, (lambda t: 2 * t, 0.0, 0.3))
    pd.DataFrame({"version": [1]}).to_csv(folder / "Metadata.csv", index=False)
    return folder


def test_sensorlogger_folder_aligns_gyroscope(tmp_path: Path) -> None:
    [rec] = read_recordings(sensorlogger_folder(tmp_path / "2024-05-01_10-00-00"))
    frame = rec.frame
    assert rec.name == "2024-05-01_10-00-00" and rec.channels == ("ax", "ay", "az", "gx", "gy", "gz")
    assert frame.timestamp.iloc[0] == pytest.approx(NS / 1e9 + 0.11)
    assert len(frame) == 79  # acc samples inside the gyroscope's 0.105-0.895 s
    np.testing.assert_allclose(frame.gx, 2 * (frame.timestamp - NS / 1e9), atol=1e-5)
    np.testing.assert_allclose(frame[["ax", "ay", "az"]].iloc[0], [0.1, 0.2, 9.8])
    [outside] = rec.rejected
    assert outside.reason.startswith("outside the time range of") and "Gyroscope.csv" in outside.reason
    assert outside.count == 21 and outside.rows[:3] == [1, 2, 3]


def test_sensorlogger_zip_reads_like_the_folder(tmp_path: Path) -> None:
    folder = sensorlogger_folder(tmp_path / "export")
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in folder.iterdir():
            zf.write(file, f"export/{file.name}")
    [from_zip] = read_recordings(archive)
    [from_folder] = read_recordings(folder)
    assert from_zip.name == "export"
    pd.testing.assert_frame_equal(from_zip.frame, from_folder.frame)


def test_sensorlogger_accelerometer_plus_gravity(tmp_path: Path) -> None:
    [rec] = read_recordings(sensorlogger_folder(tmp_path / "x", total=False, gravity=True))
    np.testing.assert_allclose(rec.frame[["ax", "ay", "az"]].iloc[0], [0.1, 0.2, 9.8])


def test_sensorlogger_accelerometer_alone_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_recordings(sensorlogger_folder(tmp_path / "x", total=False))
    assert "gravity removed" in err.value.problem and "TotalAcceleration.csv" in err.value.problem
    assert "Total Acceleration" in err.value.fix


def test_lone_sensorlogger_file_asks_for_the_folder(tmp_path: Path) -> None:
    folder = sensorlogger_folder(tmp_path / "x")
    with pytest.raises(DataError, match="one sensor's file from a Sensor Logger export"):
        read_recordings(folder / "Gyroscope.csv")


def phyphox_acc(n: int = 60, linear: bool = False) -> pd.DataFrame:
    t = np.arange(n) / 100
    name = "Linear Acceleration" if linear else "Acceleration"
    return pd.DataFrame(
        {
            "Time (s)": t,
            f"{name} x (m/s^2)": 0.3,
            f"{name} y (m/s^2)": 0.0,
            f"{name} z (m/s^2)": 9.8,
            "Absolute acceleration (m/s^2)": 9.8,
        }
    )


def test_phyphox_single_file(tmp_path: Path) -> None:
    raw = phyphox_acc().assign(**{"Gyroscope x (rad/s)": 0.5, "Gyroscope y (rad/s)": 0.0, "Gyroscope z (rad/s)": 0.0})
    raw.to_csv(tmp_path / "Raw Data.csv", index=False)
    [rec] = read_recordings(tmp_path / "Raw Data.csv")
    assert rec.name == "Raw Data" and rec.channels == ("ax", "ay", "az", "gx", "gy", "gz")
    np.testing.assert_allclose(rec.frame.az, 9.8)
    np.testing.assert_allclose(rec.frame.gx, 0.5)


def test_phyphox_zip_with_one_file_per_sensor(tmp_path: Path) -> None:
    gyro = pd.DataFrame({"Time (s)": np.arange(50) / 100 + 0.05, "X (rad/s)": 1.0, "Y (rad/s)": 0.0, "Z (rad/s)": 0.0})
    archive = tmp_path / "phyphox.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Accelerometer.csv", phyphox_acc().to_csv(index=False))
        zf.writestr("Gyroscope.csv", gyro.to_csv(index=False))
        zf.writestr("meta/device.csv", "property,value\nmodel,phone\n")
    [rec] = read_recordings(archive)
    assert rec.channels == ("ax", "ay", "az", "gx", "gy", "gz")
    assert rec.frame.timestamp.iloc[0] == pytest.approx(0.05) and len(rec.frame) == 50
    assert rec.rejected[0].count == 10


def test_phyphox_linear_acceleration_is_refused(tmp_path: Path) -> None:
    phyphox_acc(linear=True).to_csv(tmp_path / "Raw Data.csv", index=False)
    with pytest.raises(DataError) as err:
        read_recordings(tmp_path / "Raw Data.csv")
    assert "'Linear Acceleration' has gravity removed" in err.value.problem
    assert "Acceleration (with g)" in err.value.fix


def test_basic_motions_ts_is_read_case_by_case() -> None:
    recs = read_recordings(BASIC_MOTIONS, ReadOptions(rate_hz=10))
    assert len(recs) == 40 and recs[0].name == "BasicMotions_TRAIN-0" and recs[-1].name == "BasicMotions_TRAIN-39"
    assert {r.frame.label.iloc[0] for r in recs} == {"Standing", "Running", "Walking", "Badminton"}
    first = recs[0].frame
    assert len(first) == 100 and first.timestamp.iloc[-1] == pytest.approx(9.9)
    assert first.ax.iloc[:3].tolist() == [0.079106, 0.079106, -0.903497]
    assert recs[0].channels == ("ax", "ay", "az", "gx", "gy", "gz")


def test_ts_requires_a_rate() -> None:
    with pytest.raises(DataError, match="no timestamps") as err:
        read_recordings(BASIC_MOTIONS)
    assert "sampling rate" in err.value.fix and err.value.options == ("source_rate_hz",)


TS_HEADER = "@problemName tiny\n@timeStamps false\n@univariate false\n@dimensions 3\n@classLabel true up down\n@data\n"


def test_ts_with_three_dimensions_missing_values_and_channels(tmp_path: Path) -> None:
    z = ",".join(["9.8"] * 6)
    path = tmp_path / "tiny.ts"
    path.write_text(TS_HEADER + f"0,0,0,0,0,0:1,1,?,1,1,1:{z}:up\n0,0,0,0,0,0:1,1,1,1,1,1:{z}:down\n")
    first, second = read_recordings(path, ReadOptions(rate_hz=2))
    assert first.name == "tiny-0" and first.channels == ("ax", "ay", "az")
    assert len(first.frame) == 5 and first.rejected[0].rows == [3] and "ay" in first.rejected[0].reason
    assert set(second.frame.label) == {"down"}
    [swapped, _] = read_recordings(path, ReadOptions(rate_hz=2, ts_channels=("az", "ay", "ax")))
    assert swapped.frame.ax.iloc[0] == 9.8


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("1,2:1,2:1,2:left\n", "class label 'left' is not declared"),
        ("1,2:1,2:1:up\n", "lengths \\[1, 2\\]"),
        ("1,2:1,2:up\n", "2 dimension\\(s\\)"),
        ("1,x:1,2:1,2:up\n", "line 7: could not convert"),
    ],
)
def test_ts_malformed_cases_name_the_line(tmp_path: Path, data: str, message: str) -> None:
    path = tmp_path / "bad.ts"
    path.write_text(TS_HEADER + data)
    with pytest.raises(DataError, match=message):
        read_recordings(path, ReadOptions(rate_hz=2))


def test_ts_refuses_timestamps_and_unknown_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "stamped.ts"
    path.write_text(TS_HEADER.replace("@timeStamps false", "@timeStamps true"))
    with pytest.raises(DataError, match="line 2: timestamped .ts series are not supported"):
        read_recordings(path, ReadOptions(rate_hz=2))
    path.write_text(TS_HEADER.replace("@dimensions 3", "@dimensions 2") + "1,2:1,2:up\n")
    with pytest.raises(DataError, match="2 dimensions, channels given: none"):
        read_recordings(path, ReadOptions(rate_hz=2))


def test_ts_units_are_checked_per_file_not_per_case(tmp_path: Path) -> None:
    still, moving = ",".join(["1.0"] * 4), ",".join(["9.8"] * 4)
    zeros = ",".join(["0"] * 4)
    path = tmp_path / "units.ts"
    path.write_text(TS_HEADER + f"{zeros}:{zeros}:{still}:up\n" + f"{zeros}:{zeros}:{moving}:down\n" * 2)
    assert len(read_recordings(path, ReadOptions(rate_hz=2))) == 3  # one quiet case is not a unit error
    path.write_text(TS_HEADER + f"{zeros}:{zeros}:{still}:up\n" * 3)
    with pytest.raises(DataError, match="units.ts: the accelerometer's median magnitude is 1.00") as err:
        read_recordings(path, ReadOptions(rate_hz=2))
    assert "accelerometer units g" in err.value.fix and err.value.options == ("acc_units",)
    [rec, _, _] = read_recordings(path, ReadOptions(rate_hz=2, acc_units="g"))
    np.testing.assert_allclose(rec.frame.az, STANDARD_GRAVITY)


def test_ts_channels_must_name_each_dimension_once(tmp_path: Path) -> None:
    path = tmp_path / "tiny.ts"
    path.write_text(TS_HEADER + "1,2:1,2:1,2:up\n")
    for channels in (("gx", "gy", "gz"), ("ax", "ax", "az"), ("ax", "ay")):
        with pytest.raises(DataError, match="tiny.ts: 3 dimensions, channels given") as err:
            read_recordings(path, ReadOptions(rate_hz=2, ts_channels=channels))
        assert "one channel name per dimension" in err.value.fix


def test_folder_layout_gives_subject_and_label(tmp_path: Path) -> None:
    for subject, label, file in (("s1", "walk", "a"), ("s1", "walk", "b"), ("s2", "sit", "c")):
        (tmp_path / subject / label).mkdir(parents=True, exist_ok=True)
        imu().to_csv(tmp_path / subject / label / f"{file}.csv", index=False)
    imu().assign(label="jump").to_csv(tmp_path / "s2" / "sit" / "labelled.csv", index=False)
    imu().to_csv(tmp_path / "loose.csv", index=False)
    sensorlogger_folder(tmp_path / "s3" / "run" / "phone-export")
    (tmp_path / "README.md").write_text("notes")
    recs = {r.name: r for r in read_recordings(tmp_path)}
    assert sorted(recs) == ["loose", "s1/walk/a", "s1/walk/b", "s2/sit/c", "s2/sit/labelled", "s3/run/phone-export"]
    meta = {n: (set(r.frame.get("subject", [])), set(r.frame.get("label", []))) for n, r in recs.items()}
    assert meta["s1/walk/a"] == ({"s1"}, {"walk"}) and meta["s2/sit/c"] == ({"s2"}, {"sit"})
    assert meta["s2/sit/labelled"] == ({"s2"}, {"jump"})  # a label column wins over the layout
    assert meta["s3/run/phone-export"] == ({"s3"}, {"run"})
    assert meta["loose"] == (set(), set())
    overridden = read_recordings(tmp_path, ReadOptions(label="fall", subject="s9"))
    assert all(set(r.frame.label) == {"fall"} and set(r.frame.subject) == {"s9"} for r in overridden)


def test_folder_and_path_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no recordings found") as err:
        read_recordings(tmp_path)
    assert ".csv" in err.value.fix
    with pytest.raises(DataError, match="no such file or folder"):
        read_recordings(tmp_path / "missing.csv")
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported file type '.json'"):
        read_recordings(tmp_path / "notes.json")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("a.csv", "timestamp,ax,ay,az\n0,0,0,9.8\n")
    with pytest.raises(DataError, match="not a Sensor Logger or phyphox export \\(CSV files: a.csv\\)"):
        read_recordings(tmp_path / "other.zip")
    assert set(SUPPORTED_SUFFIXES) >= {".csv", ".parquet", ".ts", ".zip"}
