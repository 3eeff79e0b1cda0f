"""The Sensor Logger app's export: a folder or zip with one CSV per sensor.

Each sensor file has ``time`` (ns since epoch), ``seconds_elapsed`` and ``x, y, z``.
``Accelerometer.csv`` is user acceleration WITHOUT gravity, ``Gravity.csv`` the gravity
vector and ``TotalAcceleration.csv`` their sum (all m/s^2); ``Gyroscope.csv`` is rad/s.
The contract wants gravity included, so acceleration comes from TotalAcceleration, else
Accelerometer + Gravity; the gyroscope is interpolated onto the accelerometer's times.
"""

from __future__ import annotations

import pandas as pd

from features.contract import ACC_CHANNELS, GYRO_CHANNELS, TIME_COLUMN
from features.errors import DataError
from pipelines.read_options import ReadOptions
from pipelines.readers.base import finish_recording
from pipelines.readers.bundle import Bundle, attach_aligned
from pipelines.recording import Recording, RejectedRows

TOTAL, USER, GRAVITY, GYRO = "TotalAcceleration.csv", "Accelerometer.csv", "Gravity.csv", "Gyroscope.csv"
AXES = ("x", "y", "z")


def is_sensor_file(header: list[str]) -> bool:
    """A Sensor Logger sensor table: ``seconds_elapsed`` and ``x, y, z`` columns."""
    names = {h.lower() for h in header}
    return "seconds_elapsed" in names and set(AXES) <= names


def is_sensorlogger(bundle: Bundle) -> bool:
    return any(bundle.has(name) and is_sensor_file(bundle.header(name)) for name in (TOTAL, USER, GRAVITY, GYRO))


def read_sensorlogger(bundle: Bundle, options: ReadOptions, name: str) -> list[Recording]:
    """One recording: acceleration with gravity, plus the gyroscope when the export has one."""
    frame, rejected = _acceleration(bundle)
    if bundle.has(GYRO):
        gyro = _sensor_table(bundle, GYRO)
        frame, more = attach_aligned(frame, gyro, dict(zip(AXES, GYRO_CHANNELS)), bundle.where(GYRO))
        rejected += more
    frame = frame.rename(columns={"t": TIME_COLUMN})
    return [finish_recording(frame, name, str(bundle.path), options, rejected)]


def _acceleration(bundle: Bundle) -> tuple[pd.DataFrame, list[RejectedRows]]:
    """Acceleration including gravity, as ``t, ax, ay, az``, from whichever files exist."""
    if bundle.has(TOTAL):
        return _sensor_table(bundle, TOTAL).rename(columns=dict(zip(AXES, ACC_CHANNELS))), []
    if bundle.has(USER) and bundle.has(GRAVITY):
        user = _sensor_table(bundle, USER)
        gravity_columns = {axis: f"gravity_{axis}" for axis in AXES}
        frame, rejected = attach_aligned(user, _sensor_table(bundle, GRAVITY), gravity_columns, bundle.where(GRAVITY))
        for axis, channel in zip(AXES, ACC_CHANNELS):
            frame[channel] = pd.to_numeric(frame[axis], errors="coerce") + frame[gravity_columns[axis]]
        return frame[["t", *ACC_CHANNELS]], rejected
    if bundle.has(USER):
        raise DataError(
            f"{bundle.path}: Sensor Logger's Accelerometer.csv is user acceleration with gravity removed, "
            "and the export has neither TotalAcceleration.csv nor Gravity.csv to add it back.",
            "enable 'Total Acceleration' (or 'Gravity') in Sensor Logger's sensor list and record again.",
        )
    raise DataError(
        f"{bundle.path}: this Sensor Logger export has no accelerometer file "
        f"(files: {', '.join(sorted(bundle.members)) or 'none'}).",
        "enable 'Total Acceleration' in Sensor Logger and record again.",
    )


def _sensor_table(bundle: Bundle, name: str) -> pd.DataFrame:
    """A sensor file as ``t`` (seconds; epoch from ``time`` in ns, else seconds_elapsed) and ``x, y, z``."""
    table = bundle.read_csv(name)
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in AXES if c not in table.columns]
    if missing or not {"time", "seconds_elapsed"} & set(table.columns):
        raise DataError(
            f"{bundle.where(name)}: expected Sensor Logger columns time, seconds_elapsed, x, y, z "
            f"(found: {', '.join(table.columns)}).",
            "pass the folder or zip exactly as Sensor Logger exported it.",
        )
    if "time" in table.columns:
        t = pd.to_numeric(table["time"], errors="coerce") * 1e-9
    else:
        t = pd.to_numeric(table["seconds_elapsed"], errors="coerce")
    return pd.DataFrame({"t": t, **{axis: table[axis] for axis in AXES}})
