"""Registry look-ups remembered on disk, so `posture predict` can skip importing MLflow.

Importing MLflow and opening its SQLite store cost 1-2 s of a `posture predict` that
otherwise takes about one. For a SQLite tracking store the look-up can be remembered
safely: every registry write (new version, alias moved, version deleted) changes the
database file, so a resolution recorded under the file's current stamp still holds.
Any other tracking store (an MLflow server, PostgreSQL) is always asked.

Downloaded versions are kept under ``<tracking db folder>/posture-cache/models``; one
copy per version, replaced when the registry's source for that version changes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

CACHE_FOLDER = "posture-cache"
RESOLUTIONS_FILE = "resolutions.json"
SOURCE_MARKER = ".posture-source"


@dataclass(frozen=True)
class Resolution:
    """What a model URI pointed at when the store had ``stamp``, and where its copy lies."""

    name: str
    version: str
    alias: str | None
    local_dir: str
    stamp: list[int]


def sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI, else None."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///"))


class ResolutionCache:
    """Resolutions of model URIs for one SQLite tracking store (disabled for others)."""

    def __init__(self, tracking_uri: str) -> None:
        self.database = sqlite_file(tracking_uri)
        self.folder = self.database.parent / CACHE_FOLDER if self.database else None

    @property
    def enabled(self) -> bool:
        return self.database is not None

    def stamp(self) -> list[int]:
        """Changes with every write to the database (or its rollback journal / WAL)."""
        assert self.database is not None
        numbers: list[int] = []
        for path in (self.database, Path(f"{self.database}-wal"), Path(f"{self.database}-journal")):
            try:
                info = path.stat()
            except FileNotFoundError:
                numbers += [0, 0, 0]
                continue
            numbers += [info.st_ino, info.st_size, info.st_mtime_ns]
        return numbers

    def lookup(self, uri: str) -> Resolution | None:
        """The recorded resolution of ``uri`` if the store has not changed since, else None."""
        if self.folder is None or not self.database.is_file():  # type: ignore[union-attr]
            return None
        try:
            entry = json.loads((self.folder / RESOLUTIONS_FILE).read_text()).get(uri)
        except (OSError, ValueError):
            return None
        if not entry:
            return None
        resolution = Resolution(**entry)
        if resolution.stamp != self.stamp() or not Path(resolution.local_dir).is_dir():
            return None
        return resolution

    def record(self, uri: str, resolution: Resolution) -> None:
        """Remember a resolution; entries made under an older stamp are dropped."""
        assert self.folder is not None
        path = self.folder / RESOLUTIONS_FILE
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        entries = {key: value for key, value in entries.items() if value.get("stamp") == resolution.stamp}
        entries[uri] = asdict(resolution)
        _write_atomically(path, json.dumps(entries, indent=1))

    def model_copy(self, name: str, version: str, source: str, download: Callable[[Path], Path]) -> Path:
        """The local copy of ``name`` version ``version``: reused if it came from ``source``.

        ``download(folder)`` fetches the version's artifacts into ``folder`` and returns
        the model folder inside it. A fresh download replaces the old copy in one rename.
        """
        assert self.folder is not None
        final = self.folder / "models" / name / version
        marker = final / SOURCE_MARKER
        if marker.is_file() and marker.read_text() == source:
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=final.parent))
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the copy from a server run as another user
        try:
            model_dir = download(staging)
            (model_dir / SOURCE_MARKER).write_text(source)
            if final.exists():
                retired = Path(tempfile.mkdtemp(prefix=f".{version}-old-", dir=final.parent))
                final.rename(retired / "model")
                shutil.rmtree(retired, ignore_errors=True)
            model_dir.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
