"""``posture db``: migrate the prediction store and summarise what it holds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from features.errors import PostureError
from posture_cli.console import console, load_settings, print_json, user_errors

db_app = typer.Typer(help="The prediction store: migrate it, summarise, back up and restore it.", no_args_is_help=True)

DatabaseUrl = Annotated[
    Optional[str],
    typer.Option("--database-url", help="Database URL (default: POSTURE_DATABASE_URL, else the SQLite file)."),
]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``1h``, ``30m``, ``7d``, ``2w``, ``90s`` ago, or an ISO date/time (UTC when naive)."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(value)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PostureError(
            f"--since {value!r} is neither a duration nor a date.",
            "write e.g. --since 1h, 30m, 7d or 2026-11-01T08:00.",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@db_app.command("upgrade")
@user_errors
def upgrade_db(database_url: DatabaseUrl = None) -> None:
    """Create or migrate the prediction store's tables (safe to run again)."""
    from serving.store.db import redact, upgrade

    settings = load_settings(database_url=database_url)
    before, after = upgrade(settings.database_url)
    where = redact(settings.database_url)
    if before == after:
        console.print(f"prediction store at {where} is up to date (revision {after})", highlight=False, soft_wrap=True)
    else:
        console.print(
            f"prediction store at {where}: revision {before or 'none'} -> {after}", highlight=False, soft_wrap=True
        )


@db_app.command("stats")
@user_errors
def stats(
    since: Annotated[Optional[str], typer.Option("--since", help="Only the last 1h/30m/7d, or since a date.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="Only this device id (found by its hash).")] = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predictions per label and model version, sessions, error rate, latency percentiles."""
    from sqlalchemy.exc import SQLAlchemyError

    from serving.store.anonymize import pseudonymize
    from serving.store.db import StoreUnavailableError, error_reason, read_engine, redact
    from serving.store.stats import store_stats

    start = parse_since(since) if since else None
    # An explicit --database-url is read from too, whatever POSTURE_DATABASE_READ_URL says.
    settings = load_settings(database_url=database_url, database_read_url=database_url)
    read_url = settings.database_read_url or settings.database_url
    require_schema(read_url)
    engine = read_engine(settings)
    try:
        summary = store_stats(engine, start, pseudonymize(device, settings.anon_key))
    except SQLAlchemyError as err:
        raise StoreUnavailableError(
            f"Reading {redact(read_url)} failed: {error_reason(err)}.", "check it and try again."
        ) from err
    finally:
        engine.dispose()
    summary = {"database": redact(read_url), "since": start, "device": device, **summary}
    if as_json:
        print_json(_iso_times(summary))
    else:
        _render(summary)


def require_schema(url: str) -> None:
    """A clear error for a store that does not exist yet, instead of an SQL one (and
    without creating an empty SQLite file as a side effect)."""
    from sqlalchemy.engine import make_url

    from serving.store.db import SchemaError, StoreUnavailableError, current_revision, normalise_url, redact

    parsed = make_url(normalise_url(url))
    missing_file = parsed.database not in (None, "", ":memory:") and not Path(parsed.database).expanduser().exists()
    if parsed.get_backend_name() == "sqlite" and missing_file:
        raise StoreUnavailableError(
            f"There is no prediction store at {redact(url)} yet.",
            "run `posture db upgrade` (or `posture serve`), or point --database-url at the store.",
        )
    if current_revision(url) is None:
        raise SchemaError(f"The database {redact(url)} has no prediction store tables.", "run `posture db upgrade`.")


def _iso_times(value: Any) -> Any:
    """Datetimes as ISO 8601 strings, all the way down."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _iso_times(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_iso_times(item) for item in value]
    return value


def _render(summary: dict[str, Any]) -> None:
    from rich.table import Table

    predictions, sessions, latency = summary["predictions"], summary["sessions"], summary["latency_ms"]
    scope = [f"since {summary['since']:%Y-%m-%d %H:%M:%S} UTC" if summary["since"] else "all time"]
    if summary["device"]:
        scope.append(f"device {summary['device']}")
    console.print(f"prediction store at {summary['database']} ({', '.join(scope)})", highlight=False, soft_wrap=True)

    overview = Table(title="overview", show_header=False)
    overview.add_column("what")
    overview.add_column("value", justify="right")
    overview.add_row("predictions", f"{predictions['total']:,}")
    overview.add_row("first / last", f"{_when(predictions['first'])} / {_when(predictions['last'])}")
    overview.add_row("by source", ", ".join(f"{k} {v:,}" for k, v in summary["by_source"].items()) or "-")
    overview.add_row("sessions (open)", f"{sessions['total']:,} ({sessions['open']:,})")
    overview.add_row("frames / errors", f"{sessions['frames']:,} / {sessions['errors']:,}")
    overview.add_row("error rate", "-" if sessions["error_rate"] is None else f"{sessions['error_rate']:.2%}")
    overview.add_row("latency p50 / p95 / p99", " / ".join(_ms(latency[key]) for key in ("p50", "p95", "p99")))
    console.print(overview)
    if predictions["total"]:
        _render_breakdowns(summary)


def _render_breakdowns(summary: dict[str, Any]) -> None:
    from rich.table import Table

    total = summary["predictions"]["total"]
    labels = Table(title="predictions by label")
    for column in ("label", "count", "share"):
        labels.add_column(column, justify="left" if column == "label" else "right")
    for row in summary["by_label"]:
        labels.add_row(row["label"], f"{row['count']:,}", f"{row['count'] / total:.1%}")
    console.print(labels)

    models = Table(title="predictions by model version")
    for column in ("model", "version", "count", "mean confidence", "last"):
        models.add_column(column, justify="right" if column in ("count", "mean confidence") else "left")
    for row in summary["by_model"]:
        confidence = "-" if row["mean_confidence"] is None else f"{row['mean_confidence']:.3f}"
        models.add_row(row["model_name"], row["model_version"], f"{row['count']:,}", confidence, _when(row["last"]))
    console.print(models)
    if summary["live_accuracy"]:
        _render_live_accuracy(summary["live_accuracy"])


def _render_live_accuracy(rows: list[dict[str, Any]]) -> None:
    """Accuracy on the windows that ground truth (POST /v1/feedback) covers."""
    from rich.table import Table

    table = Table(title="live accuracy (windows with feedback)")
    for column in ("model", "version", "windows", "correct", "accuracy"):
        table.add_column(column, justify="left" if column in ("model", "version") else "right")
    for row in rows:
        table.add_row(
            row["model_name"],
            row["model_version"],
            f"{row['windows']:,}",
            f"{row['correct']:,}",
            f"{row['accuracy']:.1%}",
        )
    console.print(table)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


# Backups live in their own module; registered here so `posture db` lists them.
from posture_cli.db_backup_cmd import backup, restore  # noqa: E402

db_app.command("backup")(backup)
db_app.command("restore")(restore)
