"""The phyphox app's CSV export: one file ("Raw Data.csv"), or a folder/zip with one per sensor.

Headers name quantity, axis and unit: ``"Time (s)"``, ``"Acceleration x (m/s^2)"``,
``"Gyroscope x (rad/s)"``; bare ``"X (m/s^2)"`` columns take their sensor from the file
name or unit. ``"Linear Acceleration"`` has gravity removed and is refused. Units stated
in headers are used instead of the declared ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import pandas as pd

from features.contract import ACC_CHANNELS, GYRO_CHANNELS, TIME_COLUMN
from features.errors import DataError
from pipelines.read_options import TIME_SCALE, ReadOptions
from pipelines.readers.base import finish_recording
from pipelines.readers.bundle import Bundle, attach_aligned
from pipelines.recording import Recording

TIME_RE = re.compile(r"^time\s*\((s|ms)\)$", re.IGNORECASE)
COLUMN_RE = re.compile(r"^(?P<quantity>[a-z ]*?)\s*(?P<axis>[xyz])\s*\((?P<unit>[^)]*)\)$", re.IGNORECASE)
UNITS = {"m/s^2": "m/s2", "m/s²": "m/s2", "m/s2": "m/s2", "g": "g", "rad/s": "rad/s", "deg/s": "deg/s", "°/s": "deg/s"}
KIND_BY_UNIT = {"m/s2": "acc", "g": "acc", "rad/s": "gyro", "deg/s": "gyro"}
PREFIX = {"acc": "a", "gyro": "g", "linear": "l"}


@dataclass
class PhyphoxTable:
    """One phyphox file: ``t`` (s) and canonical channels, and the units its header states."""

    frame: pd.DataFrame
    units: dict[str, str]  # kind ("acc", "gyro", "linear") -> unit


def _kind_of(text: str) -> str | None:
    """The sensor a header's quantity words (or a file name) point to."""
    text = text.lower()
    if "linear" in text:
        return "linear"
    if "gyro" in text or "angular" in text:
        return "gyro"
    return "acc" if "acceler" in text else None


def _kind(quantity: str, file_name: str, unit: str | None) -> str | None:
    """Which sensor a column belongs to: its quantity words, else the file name, else its unit."""
    if quantity.strip():
        return _kind_of(quantity)  # None for other quantities (magnetic field, ...)
    return _kind_of(file_name) or KIND_BY_UNIT.get(unit or "")


def _columns(header: list[str], file_name: str) -> dict[str, tuple[str, str, str | None]]:
    """Source column -> (kind, channel, unit) for the sensor columns phyphox wrote."""
    found = {}
    for column in header:
        match = COLUMN_RE.match(column.strip())
        if match:
            unit = UNITS.get(match["unit"].strip().lower())
            kind = _kind(match["quantity"], file_name, unit)
            if kind:
                found[column] = (kind, PREFIX[kind] + match["axis"].lower(), unit)
    return found


def is_phyphox_header(header: list[str], file_name: str) -> bool:
    return bool(header) and bool(TIME_RE.match(header[0])) and bool(_columns(header, file_name))


def is_phyphox(bundle: Bundle) -> bool:
    return any(is_phyphox_header(bundle.header(name), name) for name in bundle.members)


def parse_table(raw: pd.DataFrame, file_name: str) -> PhyphoxTable:
    """Rename a phyphox file's columns to ``t`` and canonical channels (``l*`` for linear)."""
    raw.columns = [str(c).strip() for c in raw.columns]
    columns = _columns(list(raw.columns), file_name)
    scale = TIME_SCALE[TIME_RE.match(raw.columns[0]).group(1).lower()]
    frame = pd.DataFrame({"t": pd.to_numeric(raw.iloc[:, 0], errors="coerce") * scale})
    units = {}
    for source, (kind, channel, unit) in columns.items():
        frame[channel] = raw[source]
        if unit:
            units[kind] = unit
    return PhyphoxTable(frame, units)


def read_phyphox(tables: dict[str, PhyphoxTable], source: str, options: ReadOptions, name: str) -> list[Recording]:
    """One recording from the acceleration table, with the gyroscope aligned onto its times.

    ``tables`` is keyed by how messages name each file.
    """
    acc = next((t for t in tables.values() if "ax" in t.frame.columns), None)
    if acc is None:
        if any("lx" in t.frame.columns for t in tables.values()):
            raise DataError(
                f"{source}: phyphox 'Linear Acceleration' has gravity removed; models need it included.",
                "record with phyphox's 'Acceleration (with g)' sensor and export again.",
            )
        raise DataError(f"{source}: no acceleration columns in this phyphox export.", "export the accelerometer too.")
    gyro_where, gyro = next(((w, t) for w, t in tables.items() if "gx" in t.frame.columns), (None, None))
    wanted = ["t", *ACC_CHANNELS, *(GYRO_CHANNELS if gyro is acc else ())]
    frame, rejected = acc.frame[[c for c in wanted if c in acc.frame.columns]], []
    if gyro is not None and gyro is not acc:
        columns = {c: c for c in GYRO_CHANNELS if c in gyro.frame.columns}
        frame, rejected = attach_aligned(frame, gyro.frame, columns, gyro_where)
    units = {**acc.units, **(gyro.units if gyro is not None else {})}
    options = replace(
        options, acc_units=units.get("acc", options.acc_units), gyro_units=units.get("gyro", options.gyro_units)
    )
    return [finish_recording(frame.rename(columns={"t": TIME_COLUMN}), name, source, options, rejected)]


def read_phyphox_bundle(bundle: Bundle, options: ReadOptions, name: str) -> list[Recording]:
    tables = {
        bundle.where(member): parse_table(bundle.read_csv(member), member)
        for member in sorted(bundle.members)
        if is_phyphox_header(bundle.header(member), member)
    }
    return read_phyphox(tables, str(bundle.path), options, name)
