"""Phone-app exports: a folder or zip of per-sensor CSV files, and aligning sensors in time."""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from features.errors import DataError
from pipelines.recording import RejectedRows
from pipelines.validation import ROWS_LISTED, clean_rows


def sniff_delimiter(first_line: str) -> str:
    """The most frequent of comma, semicolon and tab in a header line (comma by default)."""
    return max((",", ";", "\t"), key=first_line.count)


def parse_header(first_line: str) -> list[str]:
    """Column names of a CSV header line, quotes removed."""
    line = first_line.lstrip("\ufeff").strip()
    return [name.strip() for name in next(csv.reader([line], delimiter=sniff_delimiter(line)), [])]


def read_csv_bytes(data: bytes) -> pd.DataFrame:
    """A CSV file's contents as a frame, delimiter sniffed from the header."""
    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    return pd.read_csv(io.BytesIO(data), sep=sniff_delimiter(first_line), encoding="utf-8-sig")


@dataclass(frozen=True)
class Bundle:
    """The CSV files of one export: a folder's own files, or a zip's shallowest folder of CSVs."""

    path: Path
    members: dict[str, str]  # lower-case file name -> file path (folder) or member name (zip)

    @classmethod
    def open(cls, path: Path) -> "Bundle":
        if path.is_dir():
            files = [p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".csv"]
            return cls(path, {p.name.lower(): str(p) for p in files})
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.lower().endswith(".csv") and "__MACOSX" not in n]
        except zipfile.BadZipFile as err:
            raise DataError(f"{path}: not a readable zip file ({err}).", "re-export the recording.") from err
        if not names:
            return cls(path, {})
        top = min((PurePosixPath(n).parent for n in names), key=lambda p: (len(p.parts), str(p)))
        return cls(path, {PurePosixPath(n).name.lower(): n for n in names if PurePosixPath(n).parent == top})

    def has(self, name: str) -> bool:
        return name.lower() in self.members

    def where(self, name: str) -> str:
        """How error messages name a member."""
        return f"{self.path}/{PurePosixPath(self.members[name.lower()]).name}"

    def read_bytes(self, name: str) -> bytes:
        member = self.members[name.lower()]
        if self.path.is_dir():
            return Path(member).read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(member)

    def header(self, name: str) -> list[str]:
        if self.path.is_dir():
            with open(self.members[name.lower()], encoding="utf-8-sig", errors="replace") as handle:
                return parse_header(handle.readline())
        return parse_header(self.read_bytes(name).split(b"\n", 1)[0].decode("utf-8-sig", errors="replace"))

    def read_csv(self, name: str) -> pd.DataFrame:
        return read_csv_bytes(self.read_bytes(name))


def attach_aligned(
    frame: pd.DataFrame, other: pd.DataFrame, columns: dict[str, str], where: str
) -> tuple[pd.DataFrame, list[RejectedRows]]:
    """Interpolate ``other``'s columns (source -> new name) onto ``frame``'s times ``t``.

    Both tables carry time in seconds in ``t``. ``other`` is cleaned first (its bad rows are
    reported, prefixed with ``where``); ``frame`` rows outside ``other``'s time range are
    removed and reported, since nothing can be interpolated there.
    """
    clean, rejected = clean_rows(other, ["t", *columns], where)
    rejected = [RejectedRows(f"{where}: {r.reason}", r.count, r.rows) for r in rejected]
    source_t = clean["t"].to_numpy()
    t = frame["t"].to_numpy(dtype=float)
    outside = (t < source_t[0]) | (t > source_t[-1])  # NaN times stay in, for validation to report
    if outside.all():
        raise DataError(
            f"{where} ({source_t[0]:.3f}-{source_t[-1]:.3f} s) does not overlap the accelerometer in time.",
            "export both sensors from the same recording.",
        )
    frame = frame.copy()
    for source_column, new_column in columns.items():
        frame[new_column] = np.interp(t, source_t, clean[source_column].to_numpy())
    if outside.any():
        rows = (frame.index.to_numpy()[outside] + 1)[:ROWS_LISTED].tolist()
        rejected.append(RejectedRows(f"outside the time range of {where}", int(outside.sum()), rows))
    return frame[~outside], rejected
