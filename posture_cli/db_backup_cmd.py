"""``posture db backup`` and ``posture db restore`` (registered on the ``db`` app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from features.errors import PostureError
from posture_cli.console import console, load_settings, user_errors

NEW_KEY_HINT = "export POSTURE_BACKUP_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') and keep a copy away from the backups"


@user_errors
def backup(
    encrypt: Annotated[bool, typer.Option("--encrypt", help="Encrypt with POSTURE_BACKUP_KEY (AES-256-GCM).")] = False,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Folder (default POSTURE_BACKUP_DIR, else <data>/backups).")
    ] = None,
    keep: Annotated[
        Optional[int], typer.Option("--keep", min=1, help="Backups of this database to keep (default 7).")
    ] = None,
    database_url: Annotated[
        Optional[str], typer.Option("--database-url", help="Database to dump (default: POSTURE_DATABASE_URL).")
    ] = None,
) -> None:
    """pg_dump the PostgreSQL prediction store (custom format), then delete the oldest beyond --keep."""
    from serving.store.backup import backup_database
    from serving.store.db import redact

    settings = load_settings(database_url=database_url)
    if encrypt and not settings.backup_key:
        raise PostureError("--encrypt needs a key in POSTURE_BACKUP_KEY.", NEW_KEY_HINT + ".")
    out_dir = out or settings.backup_dir
    result = backup_database(
        settings.database_url, out_dir, settings.backup_key if encrypt else None, keep or settings.backup_keep
    )
    kind = "encrypted" if result.encrypted else "not encrypted"
    console.print(
        f"backup of {redact(settings.database_url)} -> {result.path} "
        f"({result.size_bytes / 1e6:.2f} MB, {kind}, {result.seconds:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )
    for path in result.removed:
        console.print(f"removed old backup {path.name}", highlight=False)


@user_errors
def restore(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A .dump or .dump.enc from `posture db backup`.")
    ],
    database_url: Annotated[
        Optional[str], typer.Option("--database-url", help="Database to restore into (default: POSTURE_DATABASE_URL).")
    ] = None,
    clean: Annotated[
        bool, typer.Option("--clean", help="Replace the prediction store the database already holds.")
    ] = False,
) -> None:
    """Restore a backup (decrypted with POSTURE_BACKUP_KEY when encrypted) in one transaction."""
    from serving.store.backup import restore_database
    from serving.store.db import redact

    settings = load_settings(database_url=database_url)
    counts = restore_database(file, settings.database_url, settings.backup_key, clean=clean)
    rows = ", ".join(f"{table} {count:,}" for table, count in counts.items())
    console.print(f"restored {file.name} into {redact(settings.database_url)}: {rows}", highlight=False, soft_wrap=True)
