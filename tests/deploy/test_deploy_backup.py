"""``posture db backup`` / ``restore`` on the real PostgreSQL: every row of every table comes
back (plain and encrypted), retention keeps the newest N, a wrong key or a damaged file
restores nothing; the encryption format on its own; and the read replica URL serving
``posture db stats`` while writes go to the primary."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from posture_cli.main import app
from serving.store.api_keys import create_key
from serving.store.backup import TABLES, backup_database
from serving.store.backup_crypto import CHUNK_BYTES, BackupCryptoError, EncryptingWriter, decrypt_chunks
from serving.store.db import make_engine, upgrade
from serving.store.prediction_store import ConnectionRecord, PredictionStore
from tests.serving.store.store_helpers import pg_url, record, throwaway_database

ROWS = 1500
ORDER = {"predictions": "id", "connections": "session_id", "model_metrics": "id", "api_keys": "id"}


def posture(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture
def cli_env(posture_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("POSTURE_DATABASE_URL", "POSTURE_DATABASE_READ_URL", "POSTURE_BACKUP_KEY"):
        monkeypatch.delenv(name, raising=False)
    return {"COLUMNS": "200"}


def fill(url: str, spool_dir: Path, rows: int = ROWS, keys: tuple[str, ...] = ("fleet", "lab")) -> None:
    """Predictions, two sessions, model metrics and two API keys, through the real writers."""
    upgrade(url)

    async def scenario() -> None:
        store = PredictionStore(url, spool_dir, "backup-test-key", batch_size=500)
        await store.start()
        store.add_predictions([record(i, device=f"d{i % 7}") for i in range(rows)])
        opened = datetime.now(UTC) - timedelta(minutes=5)
        for session, closed in (("s-open", None), ("s-closed", datetime.now(UTC))):
            store.add_connection(
                ConnectionRecord(session, "d1", "10.0.0.1", opened, closed, 40, 20, 1, 1000 if closed else None)
            )
        store.add_model_metrics("posture", "3", {"cv_macro_f1": 0.91, "cv_accuracy": 0.93}, "sample")
        await store.close()
        # The writer spools what the database refuses (say, ids clashing after a bad restore): none may be.
        assert store.rows_spooled == 0 and store.rows_written == rows + 4  # + 2 sessions, 2 metrics

    asyncio.run(scenario())
    for name in keys:
        create_key(url, name)


def table_rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY {ORDER[t]}"))] for t in TABLES}
    engine.dispose()
    return rows


@pytest.fixture
def source(tmp_path: Path) -> Iterator[str]:
    with throwaway_database() as name:
        fill(pg_url(name), tmp_path / "spool")
        yield pg_url(name)


@pytest.mark.parametrize("encrypt", [False, True])
def test_backup_restores_every_row_into_a_fresh_database(
    encrypt: bool, source: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "POSTURE_BACKUP_KEY": "correct horse battery staple"} if encrypt else cli_env
    out = tmp_path / "backups"
    args = ["db", "backup", "--out", str(out), "--database-url", source, *(["--encrypt"] if encrypt else [])]
    assert "backup of" in posture(env, *args)
    (dump,) = out.iterdir()
    assert dump.name.endswith(".dump.enc" if encrypt else ".dump") and oct(dump.stat().st_mode & 0o777) == "0o600"
    assert dump.read_bytes().startswith(b"PSTRBK1\n" if encrypt else b"PGDMP")
    original = table_rows(source)
    assert len(original["predictions"]) == ROWS and len(original["api_keys"]) == 2
    with throwaway_database() as fresh:
        if encrypt:  # a wrong key restores nothing at all
            wrong = posture(
                {**env, "POSTURE_BACKUP_KEY": "wrong"},
                "db",
                "restore",
                str(dump),
                "--database-url",
                pg_url(fresh),
                code=1,
            )
            assert "does not decrypt" in wrong and "Traceback" not in wrong
            assert not table_rows_exist(pg_url(fresh))
        restored = posture(env, "db", "restore", str(dump), "--database-url", pg_url(fresh))
        assert f"predictions {ROWS:,}" in restored
        assert table_rows(pg_url(fresh)) == original
        refused = posture(env, "db", "restore", str(dump), "--database-url", pg_url(fresh), code=1)
        assert "already holds a prediction store" in refused and "--clean" in refused
        fill(pg_url(fresh), tmp_path / "spool2", rows=10, keys=("after",))  # sequences came back: rows append


def table_rows_exist(url: str) -> bool:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT to_regclass('public.predictions')")).scalar_one()
    engine.dispose()
    return found is not None


def test_retention_keeps_the_newest(source: str, tmp_path: Path) -> None:
    made = [backup_database(source, tmp_path / "b", None, keep=2) for _ in range(3)]
    assert sorted((tmp_path / "b").iterdir()) == [made[1].path, made[2].path]
    assert made[2].removed == [made[0].path] and made[2].size_bytes > 10_000


def test_backup_needs_a_key_to_encrypt_and_postgresql(cli_env: dict[str, str], tmp_path: Path) -> None:
    no_key = posture(
        cli_env, "db", "backup", "--encrypt", "--database-url", "postgresql://postgres@127.0.0.1/x", code=1
    )
    assert "POSTURE_BACKUP_KEY" in no_key
    sqlite = posture(cli_env, "db", "backup", "--database-url", f"sqlite:///{tmp_path / 'p.db'}", code=1)
    assert "is not PostgreSQL" in sqlite
    unreachable = posture(
        cli_env, "db", "backup", "--out", str(tmp_path), "--database-url", "postgresql://postgres@127.0.0.1:1/x", code=1
    )
    assert "pg_dump failed" in unreachable and not list(tmp_path.glob("*.dump*"))


def encrypt(data: bytes, key: str = "k") -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, key)
    for i in range(0, len(data), 300_000):
        writer.write(data[i : i + 300_000])
    writer.close()
    return sink.getvalue()


def test_encryption_round_trips_and_detects_damage() -> None:
    data = os.urandom(2 * CHUNK_BYTES + 12345)
    sealed = encrypt(data)
    assert b"".join(decrypt_chunks(io.BytesIO(sealed), "k")) == data
    assert b"".join(decrypt_chunks(io.BytesIO(encrypt(b"")), "k")) == b""
    flipped = bytearray(sealed)
    flipped[len(sealed) // 2] ^= 1
    cut_at_chunk = sealed[: 32 + 4 + CHUNK_BYTES + 16]  # header + one whole chunk: looks complete
    for damaged, key in ((bytes(flipped), "k"), (cut_at_chunk, "k"), (sealed, "wrong"), (sealed[:-3], "k")):
        with pytest.raises(BackupCryptoError):
            b"".join(decrypt_chunks(io.BytesIO(damaged), key))


def test_stats_read_the_replica_and_writes_go_to_the_primary(cli_env: dict[str, str], tmp_path: Path) -> None:
    # No real replica here: the "replica" is a second database on the same server with other
    # content, which proves which URL each path uses.
    with throwaway_database() as primary, throwaway_database() as replica:
        fill(pg_url(primary), tmp_path / "p", rows=5)
        fill(pg_url(replica), tmp_path / "r", rows=40)
        env = {**cli_env, "POSTURE_DATABASE_URL": pg_url(primary), "POSTURE_DATABASE_READ_URL": pg_url(replica)}
        stats = json.loads(posture(env, "db", "stats", "--json"))
        assert stats["predictions"]["total"] == 40 and stats["database"].endswith(replica)
        posture(env, "keys", "create", "written-to-primary")
        listed = json.loads(posture(env, "keys", "list", "--json"))
        assert "written-to-primary" in [k["name"] for k in listed]
        assert len(table_rows(pg_url(primary))["api_keys"]) == 3
        assert len(table_rows(pg_url(replica))["api_keys"]) == 2
