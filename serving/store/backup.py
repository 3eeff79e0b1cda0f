"""Backups of the PostgreSQL prediction store: ``pg_dump`` in custom format, streamed through
AES-256-GCM when a key is given, written atomically, with a retention count; and
``pg_restore`` of such a file in one transaction (docs/deployment.md, "Backups").

Passwords go to pg_dump/pg_restore in ``PGPASSWORD``, never on the command line (where
``ps`` would show them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, BinaryIO

from sqlalchemy import text
from sqlalchemy.engine import make_url

from features.errors import PostureError
from serving.store.backup_crypto import CHUNK_BYTES, EncryptingWriter, decrypt_chunks, is_encrypted
from serving.store.db import connect, current_revision, normalise_url, redact
from serving.store.spool import fsync_dir

TABLES = ("predictions", "connections", "model_metrics", "api_keys")


class BackupError(PostureError):
    """A backup or restore that cannot be done as asked."""


@dataclass
class BackupResult:
    path: Path
    size_bytes: int
    encrypted: bool
    seconds: float
    removed: list[Path] = field(default_factory=list)


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """(a libpq URI without the password, the environment that carries it)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "postgresql":
        raise BackupError(
            f"{redact(url)} is not PostgreSQL; `posture db backup` dumps PostgreSQL stores.",
            "for the SQLite file, stop the server and copy it, or run `sqlite3 FILE '.backup COPY'`.",
        )
    env = {"PGPASSWORD": parsed.password} if parsed.password else {}
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} is not installed.", "install the PostgreSQL client (apt install postgresql-client).")
    return path


def backup_database(url: str, out_dir: Path, passphrase: str | None, keep: int) -> BackupResult:
    """Dump ``url`` into ``out_dir`` (``posture-DB-TIME.dump[.enc]``), then keep the newest ``keep``."""
    target, env = libpq_target(url)
    database = make_url(normalise_url(url)).database or "postgres"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    final = out_dir / f"posture-{database}-{stamp}.dump{'.enc' if passphrase else ''}"
    partial = final.with_name(final.name + ".partial")
    started = time.perf_counter()
    command = [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--dbname={target}"]
    try:
        with open(partial, "wb", opener=_private) as sink:
            _dump_into(command, env, sink, passphrase)
            sink.flush()
            os.fsync(sink.fileno())
        partial.rename(final)  # a backup file is complete or absent, never half-written
    finally:
        partial.unlink(missing_ok=True)
    fsync_dir(out_dir)
    removed = prune_backups(out_dir, database, keep)
    return BackupResult(final, final.stat().st_size, passphrase is not None, time.perf_counter() - started, removed)


def _dump_into(command: list[str], env: dict[str, str], sink: BinaryIO, passphrase: str | None) -> None:
    writer = EncryptingWriter(sink, passphrase) if passphrase else None
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty pg_dump cannot block
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env={**os.environ, **env})
        assert process.stdout is not None
        for chunk in iter(lambda: process.stdout.read(CHUNK_BYTES), b""):  # type: ignore[union-attr]
            (writer or sink).write(chunk)
        if process.wait() != 0:
            raise BackupError(
                f"pg_dump failed: {_first_line(errors)}", "check the database URL and that it is reachable."
            )
    if writer is not None:
        writer.close()


def prune_backups(out_dir: Path, database: str, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups of ``database`` (names sort by time)."""
    backups = sorted(
        path for path in out_dir.glob(f"posture-{database}-*.dump*") if path.name.endswith((".dump", ".dump.enc"))
    )
    doomed = backups[: max(0, len(backups) - max(1, keep))]
    for path in doomed:
        path.unlink()
    return doomed


def restore_database(path: Path, url: str, passphrase: str | None, clean: bool = False) -> dict[str, int]:
    """Restore a backup into ``url`` in one transaction; returns the rows per table afterwards."""
    target, env = libpq_target(url)
    encrypted = is_encrypted(path)
    if encrypted and not passphrase:
        raise BackupError(f"{path} is encrypted.", "set POSTURE_BACKUP_KEY to the key it was made with.")
    if not clean and current_revision(url) is not None:
        raise BackupError(
            f"{redact(url)} already holds a prediction store.",
            "restore into a new database (createdb), or pass --clean to replace what it holds.",
        )
    command = [
        _tool("pg_restore"),
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={target}",
        *(["--clean", "--if-exists"] if clean else []),
    ]
    with open(path, "rb") as source, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=errors, env={**os.environ, **env})
        _feed(process, _plain_chunks(source, passphrase if encrypted else None))
        if process.wait() != 0:
            raise BackupError(f"pg_restore failed: {_first_line(errors)}", "check the file and the target database.")
    return table_counts(url)


def _plain_chunks(source: BinaryIO, passphrase: str | None) -> Iterator[bytes]:
    if passphrase is None:
        return iter(lambda: source.read(CHUNK_BYTES), b"")
    return decrypt_chunks(source, passphrase)


def _feed(process: subprocess.Popen[bytes], chunks: Iterator[bytes]) -> None:
    """Stream into pg_restore; on a bad chunk kill it, so its transaction commits nothing."""
    assert process.stdin is not None
    try:
        for chunk in chunks:
            process.stdin.write(chunk)
    except BrokenPipeError:
        pass  # pg_restore stopped early; its exit status and stderr say why
    except BaseException:
        process.kill()
        process.wait()
        raise
    finally:
        if not process.stdin.closed:
            try:
                process.stdin.close()
            except BrokenPipeError:
                pass


def table_counts(url: str) -> dict[str, int]:
    with connect(url) as conn:
        return {table: int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()) for table in TABLES}


def _first_line(errors: IO[bytes]) -> str:
    errors.seek(0)
    lines = [line for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
    return lines[0].strip() if lines else "no message"


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)  # backups hold key digests and pseudonyms: owner only
