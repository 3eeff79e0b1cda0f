"""Checks at the edge: a raw frame with canonical column names becomes a clean one, or a DataError.

Bad rows (NaN/inf, non-monotonic or duplicate time) are removed and reported as
RejectedRows with their source row numbers (``frame.index + 1``); a frame whose rows
are mostly bad is refused. Units are checked against what was declared, then converted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import ACC_CHANNELS, ALL_CHANNELS, GYRO_CHANNELS, META_COLUMNS, TIME_COLUMN, STANDARD_GRAVITY
from features.contract import looks_like_g
from features.errors import DataError
from pipelines.read_options import ReadOptions
from pipelines.recording import RejectedRows

NOT_SECONDS = "not seconds? declare the time units"  # a time beyond any clock in seconds

MAX_BAD_SHARE = 0.5  # refuse a frame when more than this share of its rows is bad
MAX_RAD_S = 50.0  # ~2900 deg/s: beyond the range of common gyroscopes, so such data is in deg/s
MIN_G_DECLARED_MEDIAN = 4.0  # a median |a| above 4 g is not human motion: the data is in m/s^2
ROWS_LISTED = 20
MAX_ABS_TIME_S = 1e12  # ~31,700 years: a clock in seconds never reaches it (a time 1e300 once passed)
# In the declared units: ~1,000 g or 10,000 rad/s (deg/s) is past any IMU and far from float overflow
# (1e38 passed, and 1e300 overflowed the features into infinities).
MAX_ABS_VALUE = 1e4


def validate_frame(
    frame: pd.DataFrame, source: str, options: ReadOptions, check_units: bool = True
) -> tuple[pd.DataFrame, list[RejectedRows]]:
    """Return the clean canonical frame (new index) and the rows removed from it, with why.

    ``check_units=False`` skips the unit heuristics (for callers that check a whole file at once).
    """
    require_columns(frame, source)
    channels = [c for c in ALL_CHANNELS if c in frame.columns]
    clean, rejected = clean_rows(frame, [TIME_COLUMN, *channels], source)
    if check_units:
        check_declared_units(clean, source, options)
    clean = to_canonical_units(clean, options)
    meta = [c for c in META_COLUMNS if c in clean.columns and c != "recording"]
    for column in meta:  # strings; a missing value (an unlabelled sample) stays missing, not "None"
        clean[column] = clean[column].astype(str).where(clean[column].notna())
    return clean[[TIME_COLUMN, *channels, *meta]].reset_index(drop=True), rejected


def require_columns(frame: pd.DataFrame, source: str) -> None:
    """Time and all three accelerometer axes must be there; gyroscope axes all or none."""
    known = {TIME_COLUMN, *ALL_CHANNELS, *META_COLUMNS}
    others = [str(c) for c in frame.columns if c not in known] or [str(c) for c in frame.columns]
    found = f"(columns found: {', '.join(others) or 'none'})"
    if TIME_COLUMN not in frame.columns:
        raise DataError(
            f"{source}: no time column {found}.",
            "map it (timestamp=COLUMN), or give the sampling rate for evenly sampled data without time.",
            options=("channel_map", "source_rate_hz"),
        )
    gyro_present = [c for c in GYRO_CHANNELS if c in frame.columns]
    expected = ACC_CHANNELS + (GYRO_CHANNELS if gyro_present else ())
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing channel(s) {', '.join(missing)} {found}.",
            f"map each to its source column, e.g. {missing[0]}=COLUMN.",
            options=("channel_map",),
        )


def clean_rows(frame: pd.DataFrame, columns: list[str], source: str) -> tuple[pd.DataFrame, list[RejectedRows]]:
    """Coerce ``columns`` (time first) to float and drop rows with NaN/inf, values out of any
    sensor's range (``MAX_ABS_TIME_S``, ``MAX_ABS_VALUE``) or out-of-order time."""
    if len(frame) == 0:
        raise DataError(f"{source}: no data rows.", "check that the file holds samples below its header.")
    index = frame.index.to_numpy()
    rows = index + 1 if np.issubdtype(index.dtype, np.integer) else np.arange(1, len(frame) + 1)
    numeric = frame.copy()
    for column in columns:
        numeric[column] = pd.to_numeric(numeric[column], errors="coerce").astype(float)
    values = numeric[columns].to_numpy()
    finite = np.isfinite(values)
    bounds = np.array([MAX_ABS_TIME_S] + [MAX_ABS_VALUE] * (len(columns) - 1))
    with np.errstate(invalid="ignore"):
        in_range = np.abs(values) <= bounds  # False for NaN too
    rejected = []
    for i, column in enumerate(columns):
        if not finite[:, i].all():
            rejected.append(_bad_run(~finite[:, i], rows, f"NaN/inf or non-numeric value in {column}"))
        if (finite[:, i] & ~in_range[:, i]).any():
            rejected.append(_bad_run(finite[:, i] & ~in_range[:, i], rows, _out_of_range(column, i == 0, bounds[i])))
    good = in_range.all(axis=1)
    rejected += _bad_time_order(values[:, 0], good, rows)
    if len(frame) - good.sum() > MAX_BAD_SHARE * len(frame):
        summary = "; ".join(f"{r.reason}: {r.count} rows, first at row {r.rows[0]}" for r in rejected)
        raise DataError(
            f"{source}: {len(frame) - int(good.sum())} of {len(frame)} rows are bad ({summary}).",
            "repair the source (or map the right columns); a recording must be mostly valid to be used.",
            options=("channel_map", *(("time_units",) if any(NOT_SECONDS in r.reason for r in rejected) else ())),
        )
    return numeric[good], rejected


def _out_of_range(column: str, is_time: bool, bound: float) -> str:
    if is_time:
        return f"{column} beyond +-{bound:g} s ({NOT_SECONDS})"
    return f"{column} beyond +-{bound:g} (no IMU measures it; check the units)"


def _bad_run(bad: np.ndarray, rows: np.ndarray, reason: str) -> RejectedRows:
    """The ``bad`` rows, for ``reason``, with the longest run of them."""
    edges = np.diff(np.concatenate(([0], bad.astype(np.int8), [0])))
    longest = int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())
    return RejectedRows(f"{reason} (longest run {longest} rows)", int(bad.sum()), rows[bad][:ROWS_LISTED].tolist())


def _bad_time_order(t: np.ndarray, good: np.ndarray, rows: np.ndarray) -> list[RejectedRows]:
    """Mark rows (among ``good``, updated in place) whose time is not after every earlier row's."""
    kept = np.flatnonzero(good)
    times = t[kept]
    latest = np.maximum.accumulate(np.concatenate(([-np.inf], times[:-1])))
    found = []
    for reason, bad in (("non-monotonic timestamp", times < latest), ("duplicate timestamp", times == latest)):
        if bad.any():
            found.append(RejectedRows(reason, int(bad.sum()), rows[kept[bad]][:ROWS_LISTED].tolist()))
            good[kept[bad]] = False
    return found


def check_declared_units(frame: pd.DataFrame, source: str, options: ReadOptions) -> None:
    """Refuse data whose magnitudes contradict the declared units; never guess silently."""
    acc = frame[list(ACC_CHANNELS)].to_numpy(dtype=float)
    median = float(np.nanmedian(np.linalg.norm(acc, axis=1))) if len(acc) else 0.0
    if options.acc_units == "m/s2" and looks_like_g(acc):
        raise DataError(
            f"{source}: the accelerometer's median magnitude is {median:.2f}, which looks like g "
            "(with gravity it reads ~9.8 in m/s^2), but m/s^2 was declared.",
            "declare the accelerometer units g if the file is in g; if gravity was removed (linear "
            "acceleration), export the acceleration with gravity included.",
            options=("acc_units",),
        )
    if options.acc_units == "g" and median > MIN_G_DECLARED_MEDIAN:
        raise DataError(
            f"{source}: the accelerometer's median magnitude is {median:.2f}, which looks like m/s^2, "
            "but g was declared.",
            "declare the accelerometer units m/s2.",
            options=("acc_units",),
        )
    if options.gyro_units == "rad/s" and all(c in frame.columns for c in GYRO_CHANNELS):
        gyro = np.linalg.norm(frame[list(GYRO_CHANNELS)].to_numpy(dtype=float), axis=1)
        high = float(np.nanpercentile(gyro, 99)) if len(gyro) else 0.0
        if high > MAX_RAD_S:
            raise DataError(
                f"{source}: the gyroscope reaches {high:.0f} (99th percentile), "
                f"beyond {MAX_RAD_S:.0f} rad/s, which looks like deg/s, but rad/s was declared.",
                "declare the gyroscope units deg/s.",
                options=("gyro_units",),
            )


def to_canonical_units(frame: pd.DataFrame, options: ReadOptions) -> pd.DataFrame:
    """Convert declared units to m/s^2 and rad/s."""
    frame = frame.copy()
    if options.acc_units == "g":
        frame[list(ACC_CHANNELS)] *= STANDARD_GRAVITY
    gyro = [c for c in GYRO_CHANNELS if c in frame.columns]
    if options.gyro_units == "deg/s" and gyro:
        frame[gyro] *= np.pi / 180.0
    return frame
