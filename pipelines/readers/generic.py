"""Generic tables (CSV, TSV, Parquet): columns mapped to canonical names, time converted to seconds.

Columns are found by ``--map`` first, then by their canonical name, then by a few common
spellings compared without case and punctuation (``acc_x``, ``AccelX``, ``gyro_x``, ``time``).
A ``recording`` column splits a table into one Recording per value.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import ALL_CHANNELS, META_COLUMNS, TIME_COLUMN
from features.errors import DataError
from pipelines.read_options import TIME_SCALE, ReadOptions
from pipelines.readers.base import finish_recording
from pipelines.readers.bundle import sniff_delimiter
from pipelines.recording import Recording

log = logging.getLogger("posture.readers")

CANONICAL = (TIME_COLUMN, *ALL_CHANNELS, *META_COLUMNS)
_AXIS_WORDS = {"a": ("acc", "accel", "acceleration", "accelerometer"), "g": ("gyr", "gyro", "gyroscope")}
ALIASES: dict[str, tuple[str, ...]] = {
    TIME_COLUMN: ("timestamp", "time", "t"),
    **{p + axis: tuple(w + axis for w in words) for p, words in _AXIS_WORDS.items() for axis in "xyz"},
}
UNIT_SUFFIX_RE = re.compile(r"[_\s(\[.-](ms|us|ns|s)[)\]]?$", re.IGNORECASE)


def read_table(path: Path) -> pd.DataFrame:
    """A CSV/TSV (delimiter sniffed) or Parquet file as a frame with a 0-based row index.

    A file that is not what its suffix says (empty, not UTF-8, not a table, not Parquet) is a
    DataError naming the path, not pandas' or pyarrow's traceback."""
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        delimiter = sniff_delimiter(handle.readline())
    try:
        return pd.read_csv(path, sep=delimiter, encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}).",
            "save it as UTF-8 (Excel: 'CSV UTF-8'), or convert it, e.g. iconv -f latin1 -t utf-8.",
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty.", "pass a table with a header row and samples below it.") from None
    except pd.errors.ParserError as err:
        raise DataError(
            f"{path}: not a readable table ({str(err).strip().splitlines()[-1]}).",
            "pass a comma, semicolon or tab separated table with one header row.",
        ) from None


def _read_parquet(path: Path) -> pd.DataFrame:
    from pyarrow import ArrowException  # read_parquet imports pyarrow anyway

    try:
        return pd.read_parquet(path).reset_index(drop=True)
    except ArrowException as err:
        raise DataError(
            f"{path}: not a readable Parquet file ({str(err).splitlines()[0]})",
            "check that the file was written completely, or export it again.",
        ) from None


def read_generic(path: Path, options: ReadOptions, name: str) -> list[Recording]:
    """One Recording per file, or per value of its ``recording`` column."""
    source = str(path)
    frame, time_source = map_columns(read_table(path), options.column_map, source)
    frame = seconds_column(frame, time_source, options, source)
    if "recording" not in frame.columns:
        return [finish_recording(frame, name, source, options)]
    groups = frame.groupby(frame["recording"].astype(str).fillna(name), sort=False)
    return [finish_recording(part, str(key), source, options) for key, part in groups]


def _key(column: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(column).lower())


def map_columns(raw: pd.DataFrame, column_map: dict[str, str], source: str) -> tuple[pd.DataFrame, str | None]:
    """Canonical names for the columns found; returns the frame and the time column's source name.

    Columns that map to nothing stay, so a missing-channel error can list them.
    """
    unknown = [c for c in column_map if c not in CANONICAL]
    if unknown:
        raise DataError(
            f"The column map names unknown channel(s) {', '.join(unknown)}.",
            f"map one of {', '.join(CANONICAL)}.",
            options=("channel_map",),
        )
    absent = [f"{c}={s}" for c, s in column_map.items() if s not in raw.columns]
    if absent:
        raise DataError(
            f"{source}: column map {' '.join(absent)}: no such column (columns: {', '.join(map(str, raw.columns))}).",
            "use the column names exactly as the file's header spells them.",
            options=("channel_map",),
        )
    sources = dict(column_map)
    for canonical, spellings in ALIASES.items():
        if canonical not in sources and canonical not in raw.columns:
            match = next((c for c in raw.columns if _time_key(c, canonical) in spellings), None)
            if match is not None:
                sources[canonical] = match
    frame = raw.drop(columns=[s for s in sources.values() if s in raw.columns])
    for canonical, column in sources.items():
        frame[canonical] = raw[column]
    return frame, sources.get(TIME_COLUMN, TIME_COLUMN if TIME_COLUMN in raw.columns else None)


def _time_key(column: str, canonical: str) -> str:
    """A column's alias key; for time, a unit suffix (``time_ms``) is ignored."""
    if canonical == TIME_COLUMN:
        return _key(UNIT_SUFFIX_RE.sub("", str(column)))
    return _key(column)


def seconds_column(frame: pd.DataFrame, time_source: str | None, options: ReadOptions, source: str) -> pd.DataFrame:
    """Convert ``timestamp`` to float seconds; without one, build it from ``options.rate_hz``."""
    if TIME_COLUMN not in frame.columns:
        if options.rate_hz:
            frame[TIME_COLUMN] = np.arange(len(frame)) / options.rate_hz
        return frame
    column = pd.to_numeric(frame[TIME_COLUMN], errors="coerce")
    if column.notna().mean() <= 0.5:  # mostly not numbers: try date-times
        parsed = pd.to_datetime(frame[TIME_COLUMN], errors="coerce", format="mixed")
        if parsed.notna().mean() > 0.5:
            frame[TIME_COLUMN] = (parsed - pd.Timestamp(0, tz=parsed.dt.tz)) / pd.Timedelta(seconds=1)
            return frame
    unit = options.time_units or _unit_from_name(time_source) or _unit_from_steps(column.to_numpy(dtype=float))
    if options.time_units is None and unit != "s":
        log.info("%s: time column %r read as %s", source, time_source, unit)
    frame[TIME_COLUMN] = column.astype(float) * TIME_SCALE[unit]
    return frame


def _unit_from_name(column: str | None) -> str | None:
    match = UNIT_SUFFIX_RE.search(str(column or ""))
    return match.group(1).lower() if match else None


def _unit_from_steps(t: np.ndarray) -> str:
    """The unit whose median step means 1 Hz to ~1 kHz sampling: <= 1 s, <= 1e3 ms, <= 1e6 us, else ns."""
    steps = np.diff(t[np.isfinite(t)])
    steps = steps[steps > 0]
    median = float(np.median(steps)) if steps.size else 0.0
    for unit, limit in (("s", 1.0), ("ms", 1e3), ("us", 1e6)):
        if median <= limit:
            return unit
    return "ns"
