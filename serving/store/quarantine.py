"""Rows the database refuses as data: set aside, durably, so they never block the rows behind them.

Two ways in. Before any write, ``unstorable`` checks each row's text against what both stores
can hold (no NUL, no lone surrogate, no value longer than its column or than an index entry
holds): ~2 us of the writer thread a prediction row (measured at load 10 on 2 cores; its
COPY costs more), and it names the field. Then, whatever it did not foresee, a batch
the database refuses as data (serving/store/failures.py) goes here whole.

Layout: ``<spool_dir>/quarantine/<time>-<pid>.jsonl``, one file per process, in the spool's own
line format (``{"batch": id, "items": [[table, row], ...], "reason": "..."}``), fsynced before
the rows leave the queue or the spool. To replay rows after fixing them, move the file into a
new lane folder (``<spool_dir>/lane-<n>/000000000001.jsonl``): the next start adopts and replays
it. After a crash between the quarantine and the spool's bookkeeping, a batch can appear twice
(same batch id, same rows).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.store.schema import Base
from serving.store.spool import Item, append_line, encode_line, fsync_dir

# A btree index entry holds ~2.7 KB (connections.session_id is a primary key, model names
# and versions are indexed): longer text would fail the write, so refuse it by name here.
MAX_TEXT_BYTES = 2000
_LENGTHS = {
    table.name: {column.name: getattr(column.type, "length", None) or MAX_TEXT_BYTES for column in table.columns}
    for table in Base.metadata.tables.values()
}


def _text_problem(value: str, limit: int) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    if value.isascii():
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode)"
    return f"is {size} bytes long, more than {limit}" if size > limit else None


def unstorable(table: str, row: dict[str, Any]) -> str | None:
    """Why ``row`` cannot be stored in ``table`` (e.g. "session_id contains a NUL character"), or None."""
    lengths = _LENGTHS[table]
    for name, value in row.items():
        if isinstance(value, str):
            limit = lengths.get(name, MAX_TEXT_BYTES)
            if value.isascii() and "\x00" not in value and len(value) <= limit:
                continue  # the common case, checked in one pass each
            if problem := _text_problem(value, limit):
                return f"{table}.{name} {problem}"
        elif isinstance(value, dict):  # JSON: its keys are text too
            keys = "".join(map(str, value))
            if keys.isascii() and "\x00" not in keys and len(keys) <= MAX_TEXT_BYTES:
                continue
            for key in value:
                if problem := _text_problem(str(key), MAX_TEXT_BYTES):
                    return f"{table}.{name} has a key that {problem}"
    return None


def _rows_in(path: Path) -> int:
    rows = 0
    for line in path.read_bytes().splitlines():
        try:
            rows += len(json.loads(line)["items"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line: never acknowledged
    return rows


class Quarantine:
    """Appends refused batches to this process's quarantine file; ``rows`` counts every row
    in the folder (those found at start and those added since)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory  # made at the first quarantined batch
        self.rows = sum(_rows_in(path) for path in directory.glob("*.jsonl"))
        self._fd: int | None = None

    def add(self, batch_id: str, items: list[Item], reason: str) -> None:
        """Durable when this returns (fsynced); OSError when the disk refuses."""
        append_line(self._writable(), encode_line(batch_id, items, reason=reason))
        self.rows += len(items)

    def _writable(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.getpid()}.jsonl"
            self._fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fsync_dir(self.directory)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
