"""Validation at the edge: every problem is named with its column or row and a fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import STANDARD_GRAVITY
from features.errors import DataError
from pipelines.readers import ReadOptions, read_recordings
from pipelines.validation import validate_frame

SOURCE = "walk.csv"


def imu_frame(n: int = 20, rate_hz: float = 50.0, gyro: bool = True) -> pd.DataFrame:
    """``n`` samples: gravity on z in m/s^2, small motion, gyro in rad/s."""
    t = np.arange(n) / rate_hz
    frame = pd.DataFrame({"timestamp": t, "ax": 0.3 * np.sin(t), "ay": 0.1, "az": 9.81})
    if gyro:
        frame = frame.assign(gx=0.2 * np.cos(t), gy=0.0, gz=-0.1)
    return frame


def validate(frame: pd.DataFrame, **options: object) -> tuple[pd.DataFrame, list]:
    return validate_frame(frame, SOURCE, ReadOptions(**options))


def test_clean_frame_passes_unchanged() -> None:
    frame = imu_frame().assign(label="walk", subject="s1", extra=1.0)
    clean, rejected = validate(frame)
    assert rejected == []
    assert list(clean.columns) == ["timestamp", "ax", "ay", "az", "gx", "gy", "gz", "label", "subject"]
    pd.testing.assert_frame_equal(clean[["timestamp", "az", "gx"]], frame[["timestamp", "az", "gx"]])


def test_missing_channels_are_named_with_a_map_fix() -> None:
    frame = imu_frame().rename(columns={"ax": "accX", "ay": "accY"})
    with pytest.raises(DataError) as err:
        validate(frame)
    assert "walk.csv: missing channel(s) ax, ay" in err.value.problem
    assert "accX" in err.value.problem and "ax=COLUMN" in err.value.fix and err.value.options == ("channel_map",)


def test_partial_gyroscope_is_missing_channels() -> None:
    with pytest.raises(DataError, match="missing channel\\(s\\) gz"):
        validate(imu_frame().drop(columns="gz"))


def test_accelerometer_only_is_valid() -> None:
    clean, _ = validate(imu_frame(gyro=False))
    assert list(clean.columns) == ["timestamp", "ax", "ay", "az"]


def test_missing_time_column_suggests_map_or_rate() -> None:
    with pytest.raises(DataError) as err:
        validate(imu_frame().drop(columns="timestamp"))
    assert "no time column" in err.value.problem
    assert "timestamp=COLUMN" in err.value.fix and err.value.options == ("channel_map", "source_rate_hz")


def test_nan_run_is_removed_and_reported_with_rows() -> None:
    frame = imu_frame()
    frame.loc[2:4, "gx"] = np.nan
    frame.loc[9, "ax"] = np.inf
    frame["ay"] = frame["ay"].astype(object)
    frame.loc[11, "ay"] = "n/a"
    clean, rejected = validate(frame)
    assert len(clean) == 15 and clean.index.tolist() == list(range(15))
    reasons = {r.reason: (r.count, r.rows) for r in rejected}
    assert reasons["NaN/inf or non-numeric value in gx (longest run 3 rows)"] == (3, [3, 4, 5])
    assert reasons["NaN/inf or non-numeric value in ax (longest run 1 rows)"] == (1, [10])
    assert reasons["NaN/inf or non-numeric value in ay (longest run 1 rows)"] == (1, [12])


def test_non_monotonic_and_duplicate_time_rows_are_removed() -> None:
    frame = imu_frame(8)
    frame["timestamp"] = [0.0, 0.1, 0.2, 0.15, 0.3, 0.3, 0.4, 0.5]
    clean, rejected = validate(frame)
    assert clean.timestamp.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    assert [(r.reason, r.rows) for r in rejected] == [
        ("non-monotonic timestamp", [4]),
        ("duplicate timestamp", [6]),
    ]


def test_rows_are_numbered_from_the_source_index() -> None:
    frame = imu_frame(10)
    frame.index = range(100, 110)
    frame.loc[105, "gy"] = np.nan
    _, [rejected] = validate(frame)
    assert rejected.rows == [106]


def test_mostly_bad_frame_is_refused_half_is_not() -> None:
    frame = imu_frame(10)
    frame.loc[0:4, "gz"] = np.nan
    clean, _ = validate(frame)
    assert len(clean) == 5
    frame.loc[5, "gz"] = np.nan
    with pytest.raises(DataError) as err:
        validate(frame)
    assert "walk.csv: 6 of 10 rows are bad" in err.value.problem
    assert "value in gz (longest run 6 rows): 6 rows, first at row 1" in err.value.problem


def test_empty_frame_is_refused() -> None:
    with pytest.raises(DataError, match="walk.csv: no data rows"):
        validate(imu_frame(0))


def test_g_data_declared_as_m_s2_is_refused() -> None:
    frame = imu_frame().assign(az=1.0)
    with pytest.raises(DataError) as err:
        validate(frame)
    assert "walk.csv" in err.value.problem and "looks like g" in err.value.problem
    assert "accelerometer units g" in err.value.fix and err.value.options == ("acc_units",)


def test_m_s2_data_declared_as_g_is_refused() -> None:
    with pytest.raises(DataError) as err:
        validate(imu_frame(), acc_units="g")
    assert (
        "looks like m/s^2" in err.value.problem
        and "accelerometer units m/s2" in err.value.fix
        and err.value.options == ("acc_units",)
    )


def test_deg_s_gyroscope_declared_as_rad_s_is_refused() -> None:
    frame = imu_frame().assign(gx=lambda f: 300 * np.sin(f.timestamp * 20))
    with pytest.raises(DataError) as err:
        validate(frame)
    assert (
        "looks like deg/s" in err.value.problem
        and "gyroscope units deg/s" in err.value.fix
        and err.value.options == ("gyro_units",)
    )


def test_declared_units_are_converted() -> None:
    frame = imu_frame().assign(az=1.0, gx=90.0)
    clean, _ = validate(frame, acc_units="g", gyro_units="deg/s")
    np.testing.assert_allclose(clean.az, STANDARD_GRAVITY)
    np.testing.assert_allclose(clean.gx, np.pi / 2)


def test_unit_checks_can_be_left_to_the_caller() -> None:
    clean, _ = validate_frame(imu_frame().assign(az=1.0), SOURCE, ReadOptions(), check_units=False)
    assert clean.az.iloc[0] == 1.0


def test_unknown_unit_options_are_refused() -> None:
    with pytest.raises(DataError, match="for the accelerometer") as err:
        ReadOptions(acc_units="mg")
    assert "m/s2|g" in err.value.fix and err.value.options == ("acc_units",)
    with pytest.raises(DataError, match="for time") as err:
        ReadOptions(time_units="min")
    assert err.value.options == ("time_units",)
    with pytest.raises(DataError, match="longest gap") as err:
        ReadOptions(max_gap_s=0)
    assert err.value.options == ("max_gap_s",)
    with pytest.raises(DataError, match="sampling rate") as err:
        ReadOptions(rate_hz=-1)
    assert err.value.options == ("source_rate_hz",)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    frame = imu_frame()
    frame.loc[:15, "az"] = np.nan
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="bad.csv: 16 of 20 rows are bad"):
        read_recordings(path)
    imu_frame().assign(az=1.0).to_csv(path, index=False)
    with pytest.raises(DataError, match="bad.csv: the accelerometer's median magnitude is 1.0"):
        read_recordings(path)


def test_file_rejections_are_recorded_on_the_recording(tmp_path: Path) -> None:
    path = tmp_path / "gappy.csv"
    frame = imu_frame()
    frame.loc[7, "gy"] = np.nan
    frame.to_csv(path, index=False)
    [rec] = read_recordings(path)
    assert len(rec.frame) == 19
    assert [r.to_dict()["rows"] for r in rec.rejected] == [[8]]


def test_missing_labels_stay_missing_not_the_text_none() -> None:
    clean, _ = validate(imu_frame(4).assign(label=np.array(["walk", None, np.nan, "sit"], dtype=object)))
    assert clean.label.isna().tolist() == [False, True, True, False]
    assert clean.label.dropna().tolist() == ["walk", "sit"]
