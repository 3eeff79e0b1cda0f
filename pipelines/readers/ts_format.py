"""The UEA/sktime ``.ts`` multivariate format: one case per line, one Recording per case.

A header of ``@key value`` lines ends at ``@data``; each case is its dimensions separated by
``:``, each a comma-separated series (``?`` = missing), then its class label. There are no
timestamps, so ``rate_hz`` must be given; ``ts_channels`` names the dimensions in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import ACC_CHANNELS, ALL_CHANNELS, TIME_COLUMN
from features.errors import DataError
from pipelines.read_options import ReadOptions
from pipelines.readers.base import finish_recording
from pipelines.recording import Recording
from pipelines.validation import check_declared_units

DEFAULT_CHANNELS = {6: ALL_CHANNELS, 3: ACC_CHANNELS}


@dataclass
class TsCase:
    values: np.ndarray  # (dimensions, length)
    label: str | None


def read_ts(path: Path, options: ReadOptions, name: str) -> list[Recording]:
    """Each case becomes ``<name>-<case index>`` (0-based), its class label in ``label``."""
    if options.rate_hz is None:
        raise DataError(
            f"{path}: a .ts file holds no timestamps, so its sampling rate must be given.",
            "give the sampling rate in Hz (BasicMotions is sampled at 10 Hz).",
            options=("source_rate_hz",),
        )
    _, cases = parse_ts(path)
    if not cases:
        raise DataError(f"{path}: no cases after @data.", "check the file is complete.")
    channels = _channels(options, cases[0].values.shape[0], path)
    frames = [_case_frame(case, channels, options.rate_hz) for case in cases]
    check_declared_units(pd.concat(frames, ignore_index=True), str(path), options)  # a file's units, not a case's
    return [
        finish_recording(frame, f"{name}-{i}", str(path), options, check_units=False, where=f"{path} case {i}")
        for i, frame in enumerate(frames)
    ]


def parse_ts(path: Path) -> tuple[dict[str, str], list[TsCase]]:
    """Header (lower-case keys) and cases of a .ts file."""
    header: dict[str, str] = {}
    cases: list[TsCase] = []
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if "data" in header:
                cases.append(_parse_case(line, number, header, path))
            elif line.startswith("@"):
                key, _, value = line[1:].partition(" ")
                header[key.lower()] = value.strip()
                _check_header(header, path, number)
            else:
                raise DataError(f"{path}, line {number}: data before @data.", "check the file is in the .ts format.")
    return header, cases


def _check_header(header: dict[str, str], path: Path, number: int) -> None:
    if header.get("timestamps", "false").lower() == "true":
        raise DataError(
            f"{path}, line {number}: timestamped .ts series are not supported.",
            "export the series without timestamps and give the sampling rate, or use CSV with a time column.",
            options=("source_rate_hz",),
        )


def _parse_case(line: str, number: int, header: dict[str, str], path: Path) -> TsCase:
    """One data line: dimensions split on ':', values on ','; the class label last when declared."""
    classes = header.get("classlabel", "false").split()
    has_label = bool(classes) and classes[0].lower() == "true"
    parts = line.split(":")
    label = parts.pop().strip() if has_label else None
    if label is not None and len(classes) > 1 and label not in classes[1:]:
        raise DataError(
            f"{path}, line {number}: class label {label!r} is not declared in @classLabel ({' '.join(classes[1:])}).",
            "add it to @classLabel or correct the line.",
        )
    try:
        dims = [np.array(p.replace("?", "nan").split(","), dtype=float) for p in parts]
    except ValueError as err:
        raise DataError(f"{path}, line {number}: {err}.", "each value must be a number or '?'.") from err
    lengths = {d.size for d in dims}
    expected = header.get("dimensions")
    if len(lengths) != 1 or (expected and expected != str(len(dims))):
        raise DataError(
            f"{path}, line {number}: {len(dims)} dimension(s) of lengths {sorted(lengths)} "
            f"(@dimensions {expected or 'not given'}).",
            "every case needs all dimensions, of equal length, to form one recording.",
        )
    return TsCase(np.vstack(dims), label)


def _channels(options: ReadOptions, dimensions: int, path: Path) -> tuple[str, ...]:
    channels = tuple(options.ts_channels or DEFAULT_CHANNELS.get(dimensions, ()))
    names = set(channels)
    if len(channels) != dimensions or len(names) != dimensions or not set(ACC_CHANNELS) <= names <= set(ALL_CHANNELS):
        raise DataError(
            f"{path}: {dimensions} dimensions, channels given: {', '.join(channels) or 'none'}.",
            f"pass one channel name per dimension, in order, from {', '.join(ALL_CHANNELS)} (ax, ay, az among them).",
        )
    return channels


def _case_frame(case: TsCase, channels: tuple[str, ...], rate_hz: float) -> pd.DataFrame:
    frame = pd.DataFrame(case.values.T, columns=list(channels))
    frame.insert(0, TIME_COLUMN, np.arange(len(frame)) / rate_hz)
    if case.label is not None:
        frame["label"] = case.label
    return frame
