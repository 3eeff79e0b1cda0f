"""The UCI HAPT smartphone dataset in its own RawData layout: one Recording per experiment.

A copy is a folder holding ``RawData/labels.txt``, the RawData folder itself, or the zip as
downloaded from UCI (members at its root or under one top folder):

- ``RawData/acc_expNN_userMM.txt``: accelerometer in g (gravity included), ``x y z`` per line, 50 Hz;
- ``RawData/gyro_expNN_userMM.txt``: gyroscope in rad/s, line by line with the accelerometer;
- ``RawData/labels.txt``: one bout per line, ``experiment user activity first last``, sample
  indices from 0, ``last`` included;
- ``activity_labels.txt`` (beside RawData or inside it): ``1 WALKING`` ... ``12 LIE_TO_STAND``;
  the official names are used when it is absent.

Experiment NN of user MM becomes Recording ``expNN_userMM``: all its samples (timestamp =
index / 50 s), ``subject`` ``userMM`` and ``label`` the lower-cased activity name inside a
bout (``walking`` ... ``laying``), missing outside every bout: unlabelled samples are kept, so
no window joins the two sides of a gap. The postural transitions (activities 7-12,
``stand_to_sit`` ...) are left unlabelled by default (``ReadOptions.keep_transitions``,
``--hapt-transitions keep`` keeps them): the usual task is the six activities, and a 2-5 s
transition rarely fills a window with one label. The dataset states its units, so
``--acc-units``/``--gyro-units`` are not consulted; validation converts g to m/s^2 and checks
the magnitudes, and removes and reports NaN rows, as for every reader. Text that is not a
number, a short or missing file and a malformed labels.txt line are refused with file and line.
Measured (2 shared cores): the 21-user copy (42 experiments, 797,484 samples) reads in 2-3 s,
about half of it pandas' C parser on the text, the rest validation; the 3-user test zip in 0.5 s.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from features.contract import ACC_CHANNELS, GYRO_CHANNELS, TIME_COLUMN
from features.errors import DataError
from pipelines.read_options import ReadOptions
from pipelines.readers.base import finish_recording
from pipelines.recording import Recording

RATE_HZ = 50.0
LABELS, ACTIVITIES = "labels.txt", "activity_labels.txt"
SENSOR_FILE_RE = re.compile(r"^(acc|gyro)_exp(\d+)_user(\d+)\.txt$", re.IGNORECASE)
OFFICIAL_NAMES = (  # activity_labels.txt, ids 1-12, lower-cased
    *("walking", "walking_upstairs", "walking_downstairs", "sitting", "standing", "laying"),
    *("stand_to_sit", "sit_to_stand", "sit_to_lie", "lie_to_sit", "stand_to_lie", "lie_to_stand"),
)
FIRST_TRANSITION = 7  # activities 7-12 are the postural transitions
RESTORE = "restore the file from the original UCI HAPT download."


@dataclass(frozen=True)
class Bout:
    """One line of labels.txt: an activity over samples ``first..last`` of one experiment."""

    experiment: int
    user: int
    activity: int
    first: int
    last: int
    line: int


@dataclass
class Experiment:
    """One experiment: its two sensor files and the bouts labels.txt gives it."""

    number: int
    user: int
    files: dict[str, str] = field(default_factory=dict)  # "acc" / "gyro" -> relative path
    bouts: list[Bout] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"exp{self.number:02d}_user{self.user:02d}"


@dataclass(frozen=True)
class HaptCopy:
    """Where the files of one copy are, as paths relative to ``path`` (a folder or a zip)."""

    path: Path
    raw: dict[str, str]  # lower-case file name in the RawData folder -> relative path
    activities: str | None  # activity_labels.txt, when there is one

    @classmethod
    def find(cls, path: Path) -> HaptCopy | None:
        """The copy at ``path``: the shallowest folder with labels.txt and sensor files."""
        names = _listing(path)
        if names is None:
            return None
        sensor_folders = {p.parent for p in names if SENSOR_FILE_RE.match(p.name)}
        found = [p.parent for p in names if p.name.lower() == LABELS and p.parent in sensor_folders]
        raw = min((f for f in found if len(f.parts) <= 2), key=lambda f: (len(f.parts), str(f)), default=None)
        if raw is None:
            return None
        beside = {p.name.lower(): p.as_posix() for p in names if p.parent == raw}
        activities = [p.as_posix() for p in names if p.name.lower() == ACTIVITIES and p.parent in (raw, raw.parent)]
        return cls(path, beside, min(activities, key=len, default=None))

    def where(self, relative: str) -> str:
        """How error messages name a file."""
        return f"{self.path}/{relative}"

    def read(self, relative: str) -> bytes:
        if self.path.is_dir():
            return (self.path / relative).read_bytes()
        with zipfile.ZipFile(self.path) as archive:
            return archive.read(relative)

    def lines(self, relative: str) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) of each non-blank line of a text file."""
        text = self.read(relative).decode("utf-8", errors="replace")
        return ((number, line.split()) for number, line in enumerate(text.splitlines(), 1) if line.strip())


def _listing(path: Path) -> list[PurePosixPath] | None:
    """Files of a zip, or of a folder and its RawData folder, relative to ``path``; None if neither."""
    if path.is_dir():
        folders = [path, *(d for d in path.iterdir() if d.is_dir() and d.name.lower() == "rawdata")]
        return [PurePosixPath(f.relative_to(path).as_posix()) for d in folders for f in d.iterdir() if f.is_file()]
    try:
        with zipfile.ZipFile(path) as archive:
            return [PurePosixPath(n) for n in archive.namelist() if "__MACOSX" not in n and not n.endswith("/")]
    except (zipfile.BadZipFile, OSError):
        return None


def is_hapt(path: Path) -> bool:
    return HaptCopy.find(path) is not None


def read_hapt(path: Path, options: ReadOptions) -> list[Recording]:
    """Every experiment of the copy at ``path``, in experiment order."""
    copy = HaptCopy.find(path)
    if copy is None:
        raise DataError(f"{path}: no RawData/{LABELS} beside acc_/gyro_ files.", "pass the UCI HAPT folder or zip.")
    names, hapt_units = _activity_names(copy), replace(options, acc_units="g", gyro_units="rad/s")
    return [_read_experiment(copy, experiment, names, hapt_units) for experiment in _experiments(copy)]


def _activity_names(copy: HaptCopy) -> dict[int, str]:
    """Activity id -> lower-case name, from activity_labels.txt or the official list."""
    if copy.activities is None:
        return dict(enumerate(OFFICIAL_NAMES, start=1))
    return {int(f[0]): f[1].lower() for _, f in copy.lines(copy.activities) if len(f) == 2 and f[0].isdigit()}


def _read_bouts(copy: HaptCopy) -> list[Bout]:
    bouts = []
    for number, fields in copy.lines(copy.raw[LABELS]):
        if len(fields) != 5 or not all(f.isdigit() for f in fields) or int(fields[3]) > int(fields[4]):
            raise DataError(
                f"{copy.where(copy.raw[LABELS])}: line {number}: expected 'experiment user activity first last' "
                f"(whole numbers, first <= last), got {' '.join(fields)!r}.",
                RESTORE,
            )
        experiment, user, activity, first, last = map(int, fields)
        bouts.append(Bout(experiment, user, activity, first, last, line=number))
    return bouts


def _experiments(copy: HaptCopy) -> list[Experiment]:
    """Every experiment with sensor files or bouts, in order; each must have both files."""
    found: dict[tuple[int, int], Experiment] = {}
    for name, relative in copy.raw.items():
        if match := SENSOR_FILE_RE.match(name):
            key = int(match[2]), int(match[3])
            found.setdefault(key, Experiment(*key)).files[match[1].lower()] = relative
    for bout in _read_bouts(copy):
        key = bout.experiment, bout.user
        found.setdefault(key, Experiment(*key)).bouts.append(bout)
    for experiment in found.values():
        for sensor in ("acc", "gyro"):
            if sensor not in experiment.files:
                missing = PurePosixPath(copy.raw[LABELS]).with_name(f"{sensor}_{experiment.name}.txt")
                raise DataError(f"{copy.where(str(missing))}: no such file (experiment {experiment.number}).", RESTORE)
    return [found[key] for key in sorted(found)]


def _read_experiment(copy: HaptCopy, experiment: Experiment, names: dict[int, str], options: ReadOptions) -> Recording:
    """One experiment's accelerometer and gyroscope, line by line, with each sample's label."""
    acc_file, gyro_file = experiment.files["acc"], experiment.files["gyro"]
    acc, gyro = _read_axes(copy, acc_file, ACC_CHANNELS), _read_axes(copy, gyro_file, GYRO_CHANNELS)
    where = f"{copy.where(acc_file)} + {PurePosixPath(gyro_file).name}"
    if len(acc) != len(gyro):
        raise DataError(f"{where}: {len(acc)} and {len(gyro)} lines; they go line by line together.", RESTORE)
    frame = pd.concat([acc, gyro], axis=1)
    frame.insert(0, TIME_COLUMN, np.arange(len(frame)) / RATE_HZ)
    frame["label"] = _sample_labels(copy, experiment, len(frame), names, options.keep_transitions)
    frame["subject"] = f"user{experiment.user:02d}"
    return finish_recording(frame, experiment.name, str(copy.path), options, where=where)


def _read_axes(copy: HaptCopy, relative: str, channels: tuple[str, ...]) -> pd.DataFrame:
    """A sensor file's three space-separated columns as floats; text that is not a number is refused."""
    where = copy.where(relative)
    try:
        table = pd.read_csv(io.BytesIO(copy.read(relative)), sep=r"\s+", header=None, names=list(channels))
    except pd.errors.ParserError as err:  # "Expected 3 fields in line 7, saw 4"
        raise DataError(f"{where}: {str(err).strip().split('C error: ')[-1]}.", RESTORE) from err
    numeric = table.apply(pd.to_numeric, errors="coerce")
    bad = (numeric.isna() & table.notna()).to_numpy()
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(f"{where}: line {row + 1}: {table.iat[row, column]!r} is not a number.", RESTORE)
    return numeric.astype(float)


def _sample_labels(
    copy: HaptCopy, experiment: Experiment, n_samples: int, names: dict[int, str], keep_transitions: bool
) -> np.ndarray:
    """Each sample's activity name; None outside every bout, and in transitions unless they are kept."""
    where = copy.where(copy.raw[LABELS])
    labels = np.full(n_samples, None, dtype=object)
    for bout in experiment.bouts:
        if bout.activity not in names:
            raise DataError(f"{where}: line {bout.line}: activity {bout.activity} has no name.", RESTORE)
        if bout.last >= n_samples:
            raise DataError(
                f"{where}: line {bout.line}: the bout ends at sample {bout.last}, past the end of "
                f"{PurePosixPath(experiment.files['acc']).name} ({n_samples} samples, 0-{n_samples - 1}).",
                RESTORE,
            )
        if keep_transitions or bout.activity < FIRST_TRANSITION:
            labels[bout.first : bout.last + 1] = names[bout.activity]
    return labels
