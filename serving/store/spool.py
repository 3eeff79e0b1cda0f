"""The local append-only spool: where batches wait, in order, while the database is down.

Layout: ``<spool_dir>/lane-<k>/<seq>.jsonl`` segments, one JSON line per batch
(``{"batch": uuid, "items": [[table, row], ...]}``), fsynced before ``append`` returns.
Segments are replayed oldest first and removed only after the database committed them;
the batch ids committed with the rows make a replay that died between commit and removal
safe to repeat.

Each process holds one lane under an exclusive ``flock`` (server workers share a spool
folder), and adopts the lanes of processes that died with rows still spooled. Only one
thread may use a ``Spool`` (the store's writer thread).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from features.errors import PostureError

log = logging.getLogger("posture.serve.store")

Item = tuple[str, dict[str, Any]]  # (table name, row)
SEGMENT_MAX_ROWS = 20_000  # bounds one replay transaction and the memory it needs
_DATETIME_TAG = "__dt__"


@dataclass
class SpooledBatch:
    batch_id: str
    items: list[Item]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_DATETIME_TAG: value.isoformat()}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and _DATETIME_TAG in obj:
        return datetime.fromisoformat(obj[_DATETIME_TAG])
    return obj


def encode_line(batch_id: str, items: list[Item], **extra: Any) -> bytes:
    """One batch as one JSON line (``extra`` keys, such as a quarantine's reason, are ignored by ``read``)."""
    line = json.dumps({"batch": batch_id, "items": items, **extra}, default=_encode, separators=(",", ":"))
    return line.encode("utf-8") + b"\n"


def append_line(fd: int, line: bytes) -> None:
    """Append ``line`` to the file ``fd`` and fsync it; on failure cut it back off (never leave a
    torn line for later appends to follow)."""
    data = memoryview(line)
    start = os.lseek(fd, 0, os.SEEK_END)
    try:
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except OSError:
        os.ftruncate(fd, start)
        raise


def fsync_dir(directory: Path) -> None:
    # A new or removed file name is durable only once its directory is synced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(directory: Path) -> int:
    """An exclusive lock on ``directory``, held until the fd closes (or the process dies);
    BlockingIOError when another process holds it."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    return fd


class Spool:
    """Segments of spooled batches in one lane ``directory``; ``backlog`` counts their rows."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(directory)
        self._fd: int | None = None
        self._fd_rows = 0
        self.backlog = 0
        try:
            for segment in self.segments():
                rows = sum(len(batch.items) for batch in self.read(segment))
                if rows:
                    self.backlog += rows
                else:  # only a torn, never-acknowledged line: nothing to replay
                    segment.unlink()
        except BaseException:
            os.close(self._lock_fd)
            raise

    def segments(self) -> list[Path]:
        """Spooled segments, oldest first."""
        return sorted(self.directory.glob("*.jsonl"), key=lambda path: int(path.stem))

    def append(self, items: list[Item]) -> None:
        """Write one batch as one line and fsync it: durable when this returns."""
        fd = self._writable()
        try:
            append_line(fd, encode_line(str(uuid.uuid4()), items))
        except OSError:
            self.seal()
            raise
        self._fd_rows += len(items)
        self.backlog += len(items)
        if self._fd_rows >= SEGMENT_MAX_ROWS:
            self.seal()

    def _writable(self) -> int:
        if self._fd is None:
            segments = self.segments()
            seq = int(segments[-1].stem) + 1 if segments else 1
            self._fd = os.open(self.directory / f"{seq:012d}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._fd_rows = 0
            fsync_dir(self.directory)
        return self._fd

    def seal(self) -> None:
        """Close the segment being written; the next ``append`` starts a new one."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def read(self, segment: Path) -> list[SpooledBatch]:
        """The batches of a segment. A torn last line (a crash mid-append, never fsynced
        and never acknowledged) is skipped; a torn line elsewhere is corruption."""
        lines = segment.read_bytes().split(b"\n")
        batches = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line, object_hook=_decode)
            except json.JSONDecodeError as err:
                if number < len(lines):  # newline-terminated, so it was written whole
                    raise PostureError(
                        f"Spool segment {segment} is corrupt at line {number}.",
                        "move the file out of the spool folder and inspect it; the rest will replay.",
                    ) from err
                fields = {"segment": segment.name, "line": number}
                log.warning("spool_torn_line", extra={"event": "spool_torn_line", "fields": fields})
                continue
            batches.append(SpooledBatch(raw["batch"], [(table, row) for table, row in raw["items"]]))
        return batches

    def remove(self, segment: Path, rows: int) -> None:
        """Drop a segment whose ``rows`` the database has committed."""
        segment.unlink()
        fsync_dir(self.directory)
        self.backlog -= rows

    def close(self) -> None:
        """Close the segment and give up the lane."""
        self.seal()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def claim_lane(root: Path) -> Spool:
    """The lowest-numbered lane under ``root`` that no live process holds."""
    number = 0
    while True:
        try:
            return Spool(root / f"lane-{number}")
        except BlockingIOError:
            number += 1


def adopt_orphans(root: Path, own: Spool) -> list[Spool]:
    """Lanes that no live process holds but that still hold rows (left by a crash)."""
    orphans = []
    for lane in sorted(root.glob("lane-*")):
        if lane == own.directory:
            continue
        try:
            spool = Spool(lane)
        except BlockingIOError:  # a live process's lane
            continue
        if spool.backlog:
            orphans.append(spool)
        else:
            spool.close()
    return orphans
