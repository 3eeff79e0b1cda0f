"""Which reader reads a path: by suffix, and for folders, zips and CSVs by what is inside.

A folder or zip is a UCI HAPT copy (RawData/labels.txt), else a Sensor Logger or phyphox export.
"""

from __future__ import annotations

from pathlib import Path

from features.errors import DataError
from pipelines.read_options import ReadOptions
from pipelines.readers.bundle import Bundle, parse_header, read_csv_bytes
from pipelines.readers.generic import read_generic
from pipelines.readers.hapt import is_hapt, read_hapt
from pipelines.readers.phyphox import is_phyphox, is_phyphox_header, parse_table, read_phyphox, read_phyphox_bundle
from pipelines.readers.sensorlogger import is_sensor_file, is_sensorlogger, read_sensorlogger
from pipelines.readers.ts_format import read_ts
from pipelines.recording import Recording

SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".parquet", ".ts", ".zip")


def is_export(folder: Path) -> bool:
    """A folder that is one Sensor Logger or phyphox export or UCI HAPT copy (read whole, not walked)."""
    if is_hapt(folder):
        return True
    bundle = Bundle.open(folder)
    return is_sensorlogger(bundle) or is_phyphox(bundle)


def read_unit(path: Path, options: ReadOptions, name: str) -> list[Recording]:
    """Read one file, or one export folder/zip, into Recordings named after ``name``."""
    suffix = path.suffix.lower()
    if (path.is_dir() or suffix == ".zip") and is_hapt(path):
        return read_hapt(path, options)
    if path.is_dir() or suffix == ".zip":
        return _read_export(Bundle.open(path), options, name)
    if suffix == ".ts":
        return read_ts(path, options, name)
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, options, name)
    if suffix == ".parquet":
        return read_generic(path, options, name)
    raise DataError(
        f"{path}: unsupported file type {suffix or '(no suffix)'!r}.",
        f"pass one of {', '.join(SUPPORTED_SUFFIXES)}, or a Sensor Logger/phyphox export folder.",
    )


def _read_export(bundle: Bundle, options: ReadOptions, name: str) -> list[Recording]:
    if is_sensorlogger(bundle):
        return read_sensorlogger(bundle, options, name)
    if is_phyphox(bundle):
        return read_phyphox_bundle(bundle, options, name)
    raise DataError(
        f"{bundle.path}: not a Sensor Logger or phyphox export "
        f"(CSV files: {', '.join(sorted(bundle.members)) or 'none'}).",
        "unzip it and pass the folder of recordings, or pass the export as the app wrote it.",
    )


def _read_csv(path: Path, options: ReadOptions, name: str) -> list[Recording]:
    """A phyphox file, a lone Sensor Logger sensor file (refused), or a generic table."""
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        header = parse_header(handle.readline())
    if is_phyphox_header(header, path.name):
        table = parse_table(read_csv_bytes(path.read_bytes()), path.name)
        return read_phyphox({str(path): table}, str(path), options, name)
    if is_sensor_file(header):
        raise DataError(
            f"{path}: this is one sensor's file from a Sensor Logger export.",
            "pass the export's folder or zip, so acceleration, gravity and gyroscope are read together.",
        )
    return read_generic(path, options, name)
