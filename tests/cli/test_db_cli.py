"""``posture db upgrade`` and ``posture db stats`` against a temporary SQLite file and a
temporary database on the real PostgreSQL of this machine."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from posture_cli.db_cmd import parse_since
from posture_cli.main import app
from serving.store.db import head_revision
from serving.store.prediction_store import ConnectionRecord, PredictionRecord, PredictionStore
from tests.serving.store.store_helpers import pg_url, throwaway_database

KEY = "cli-test-anon-key"
LATENCIES = [float(value) for value in range(1, 101)]  # 1..100 ms over the recent rows


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'predictions.db'}"
        return
    with throwaway_database() as name:
        yield pg_url(name)


@pytest.fixture
def cli_env(posture_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("POSTURE_DATABASE_URL", "POSTURE_DATABASE_READ_URL"):
        monkeypatch.delenv(name, raising=False)
    return {"POSTURE_ANON_KEY": KEY, "COLUMNS": "160"}


def posture(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


def prediction(moment: datetime, device: str, label: str, version: str, latency: float) -> PredictionRecord:
    return PredictionRecord(
        time=moment,
        session_id=f"s-{device}",
        device_id=device,
        source="ws",
        model_name="posture",
        model_version=version,
        label=label,
        confidence=0.75,
        probabilities={label: 0.75},
        window_start=0.0,
        window_end=2.0,
        latency_ms=latency,
    )


def fill(url: str, spool_dir: Path) -> None:
    """100 recent predictions (60 on watch-1) over two model versions, 10 from two days ago,
    and two sessions (one still open)."""
    now = datetime.now(UTC)

    async def scenario() -> None:
        store = PredictionStore(url, spool_dir, KEY, batch_size=40)
        await store.start()
        store.add_predictions(
            [
                prediction(
                    now - timedelta(minutes=5),
                    "watch-1" if i < 60 else "phone-2",
                    "sitting" if i % 4 else "walking",
                    "1" if i < 30 else "2",
                    latency,
                )
                for i, latency in enumerate(LATENCIES)
            ]
        )
        store.add_predictions([prediction(now - timedelta(days=2), "phone-2", "lying", "1", 500.0)] * 10)
        store.add_connection(ConnectionRecord("s-watch-1", "watch-1", "10.0.0.7", now, now, 200, 60, 5, 1000))
        store.add_connection(ConnectionRecord("s-phone-2", "phone-2", "10.0.0.8", now, None, 300, 50, 0, None))
        await store.close()
        assert store.rows_written == 112

    asyncio.run(scenario())


def test_upgrade_creates_then_is_a_no_op(db_url: str, cli_env: dict[str, str]) -> None:
    head = head_revision()  # the newest migration shipped (0004: api_key_scopes)
    first = posture(cli_env, "db", "upgrade", "--database-url", db_url)
    assert head == "0004" and f"revision none -> {head}" in first
    assert f"up to date (revision {head})" in posture(cli_env, "db", "upgrade", "--database-url", db_url)


def test_stats_summarise_labels_versions_sessions_and_latency(
    db_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    posture(cli_env, "db", "upgrade", "--database-url", db_url)
    fill(db_url, tmp_path / "spool")

    every = json.loads(posture(cli_env, "db", "stats", "--database-url", db_url, "--json"))
    assert every["predictions"]["total"] == 110
    assert {row["label"]: row["count"] for row in every["by_label"]} == {"sitting": 75, "walking": 25, "lying": 10}
    assert {row["model_version"]: row["count"] for row in every["by_model"]} == {"1": 40, "2": 70}
    assert every["sessions"] == {
        "total": 2,
        "open": 1,
        "frames": 500,
        "predictions": 110,
        "errors": 5,
        "error_rate": 0.01,
    }

    recent = json.loads(posture(cli_env, "db", "stats", "--database-url", db_url, "--since", "1h", "--json"))
    assert recent["predictions"]["total"] == 100
    expected = np.percentile(LATENCIES, [50, 95, 99])  # linear, as percentile_cont
    assert [recent["latency_ms"][key] for key in ("p50", "p95", "p99")] == pytest.approx(expected)
    assert datetime.fromisoformat(recent["predictions"]["first"]) > datetime.now(UTC) - timedelta(hours=1)

    watch = json.loads(posture(cli_env, "db", "stats", "--database-url", db_url, "--device", "watch-1", "--json"))
    assert watch["predictions"]["total"] == 60 and watch["sessions"]["total"] == 1
    assert watch["sessions"]["error_rate"] == pytest.approx(5 / 200)
    assert (
        json.loads(posture(cli_env, "db", "stats", "--database-url", db_url, "--device", "nobody", "--json"))[
            "predictions"
        ]["total"]
        == 0
    )

    table = posture(cli_env, "db", "stats", "--database-url", db_url)
    for text in ("predictions by label", "sitting", "walking", "predictions by model version", "error rate", "1.00%"):
        assert text in table


def test_stats_read_from_the_read_url(cli_env: dict[str, str], tmp_path: Path) -> None:
    with throwaway_database() as name:
        posture(cli_env, "db", "upgrade", "--database-url", pg_url(name))
        fill(pg_url(name), tmp_path / "spool")
        env = {
            **cli_env,
            "POSTURE_DATABASE_URL": f"sqlite:///{tmp_path / 'never-created.db'}",
            "POSTURE_DATABASE_READ_URL": pg_url(name),
        }
        assert json.loads(posture(env, "db", "stats", "--json"))["predictions"]["total"] == 110
    assert not (tmp_path / "never-created.db").exists()


def test_stats_without_a_store_name_the_fix(cli_env: dict[str, str], tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    assert "posture db upgrade" in posture(cli_env, "db", "stats", "--database-url", missing, code=1)
    assert not (tmp_path / "missing.db").exists()
    with throwaway_database() as name:
        output = posture(cli_env, "db", "stats", "--database-url", pg_url(name), code=1)
    assert "has no prediction store tables" in output and "Traceback" not in output
    unreachable = posture(cli_env, "db", "upgrade", "--database-url", "postgresql://postgres@127.0.0.1:1/x", code=1)
    assert "Cannot use the prediction store" in unreachable
    assert "--since" in posture(cli_env, "db", "stats", "--since", "last tuesday", code=1)


def test_parse_since() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_since("1h", now) == now - timedelta(hours=1)
    assert parse_since("30m", now) == now - timedelta(minutes=30)
    assert parse_since("1.5d", now) == now - timedelta(hours=36)
    assert parse_since("2026-11-01T08:00", now) == datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
