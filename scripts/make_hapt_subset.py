"""Regenerate tests/data/hapt/hapt-rawdata-3-users.zip from the shared UCI HAPT copy.

The subset keeps the dataset's own layout, as a user downloads it from UCI: ``RawData/``
with the sensor files of the chosen users, untouched (8-significant-digit text as it is),
``RawData/labels.txt`` filtered to their experiments, and ``activity_labels.txt``. By
default the users are the three whose experiments are shortest. Member dates are fixed,
so the same source gives the same bytes.

    .venv/bin/python scripts/make_hapt_subset.py [--source ../shared/datasets/hapt] [--users 5 8 11]
"""

from __future__ import annotations

import argparse
import re
import zipfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "datasets" / "hapt"
TARGET = REPO / "tests" / "data" / "hapt" / "hapt-rawdata-3-users.zip"
SENSOR_FILE_RE = re.compile(r"^(acc|gyro)_exp(\d+)_user(\d+)\.txt$")
FIXED_DATE = (2016, 1, 1, 0, 0, 0)  # the paper's year; any fixed date keeps the zip reproducible


def sensor_files(raw: Path) -> dict[Path, int]:
    """Each sensor file of the RawData folder -> its user."""
    return {f: int(m[3]) for f in sorted(raw.iterdir()) if (m := SENSOR_FILE_RE.match(f.name))}


def shortest_users(raw: Path, count: int) -> list[int]:
    """The ``count`` users with the fewest samples over all their experiments."""
    samples: Counter[int] = Counter()
    for file, user in sensor_files(raw).items():
        if file.name.startswith("acc_"):
            samples[user] += sum(1 for _ in file.open("rb"))
    return sorted(sorted(samples, key=lambda user: (samples[user], user))[:count])


def add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(zipfile.ZipInfo(name, FIXED_DATE), data, zipfile.ZIP_DEFLATED, compresslevel=9)


def write_subset(source: Path, target: Path, users: list[int]) -> None:
    raw = source / "RawData"
    lines = (raw / "labels.txt").read_text().splitlines(keepends=True)
    labels = "".join(line for line in lines if line.split() and int(line.split()[1]) in users)
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        add(archive, "activity_labels.txt", (source / "activity_labels.txt").read_bytes())
        for file, user in sensor_files(raw).items():
            if user in users:
                add(archive, f"RawData/{file.name}", file.read_bytes())
        add(archive, "RawData/labels.txt", labels.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="the UCI HAPT copy (holding RawData/)")
    parser.add_argument("--target", type=Path, default=TARGET, help="the zip to write")
    parser.add_argument("--users", type=int, nargs="+", help="user numbers (default: the 3 shortest)")
    args = parser.parse_args()
    users = args.users or shortest_users(args.source / "RawData", 3)
    write_subset(args.source, args.target, users)
    print(f"{args.target}: users {', '.join(map(str, users))}, {args.target.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
