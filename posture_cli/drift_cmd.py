"""``posture drift report``: the drift scores the server kept in the store, as a table and a plot."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from features.errors import PostureError
from posture_cli.console import console, load_settings, user_errors
from posture_cli.db_cmd import DatabaseUrl, parse_since, require_schema

drift_app = typer.Typer(help="Drift of the served models from their training data.", no_args_is_help=True)


@drift_app.command("report")
@user_errors
def report(
    since: Annotated[str, typer.Option("--since", help="The last 24h/30m/7d, or since a date.")] = "24h",
    out: Annotated[Path, typer.Option("--out", help="Where the plot goes (PNG).")] = Path("drift.png"),
    model_version: Annotated[Optional[str], typer.Option("--model-version", help="Only this version.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The drift scores over time as a table; a plot of the worst features (training against live) and of the scores."""
    from sqlalchemy.exc import SQLAlchemyError

    from serving.store.db import StoreUnavailableError, error_reason, read_engine, redact
    from serving.store.drift_scores import drift_scores

    start = parse_since(since)
    settings = load_settings(database_url=database_url, database_read_url=database_url)
    read_url = settings.database_read_url or settings.database_url
    require_schema(read_url)
    engine = read_engine(settings)
    try:
        rows = drift_scores(engine, start, model_version)
    except SQLAlchemyError as err:
        raise StoreUnavailableError(f"Reading {redact(read_url)} failed: {error_reason(err)}.", "try again.") from err
    finally:
        engine.dispose()
    if not rows:
        raise PostureError(
            f"No drift scores in {redact(read_url)} since {start:%Y-%m-%d %H:%M} UTC.",
            "the server scores a version once POSTURE_DRIFT_WINDOW predictions have come in; try a longer --since.",
        )
    scorings = group_scorings(rows)
    console.print(scores_table(scorings))
    from posture_cli.drift_plot import write_drift_plot

    write_drift_plot(scorings, out)
    console.print(f"plot written to {out}", highlight=False, soft_wrap=True)


def group_scorings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per scoring (a version at a time), its rows by kind, oldest first."""
    grouped: dict[tuple[datetime, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        grouped[(row["time"], row["model_version"])].append(row)
    scorings = []
    for (time, version), members in grouped.items():
        features = [r for r in members if r["kind"] == "feature"]
        worst = max(features, key=lambda r: -1.0 if r["score"] is None else r["score"], default=None)
        scorings.append(
            {
                "time": time,
                "version": version,
                "features": features,
                "worst": worst,
                "prediction": next((r for r in members if r["kind"] == "prediction"), None),
                "confidence": next((r for r in members if r["kind"] == "confidence"), None),
                "alarm": any(r["alarm"] for r in members),
                "windows": members[0]["windows"],
            }
        )
    return scorings


def scores_table(scorings: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="drift scores (score / threshold; bold: above)")
    for name, justify in [("time (UTC)", "left"), ("version", "left"), ("windows", "right")]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for name in ("worst feature (PSI)", "predicted labels (JS)", "confidence drop", "alarm"):
        table.add_column(name, justify="right")
    for s in scorings:
        worst = s["worst"]
        table.add_row(
            f"{s['time']:%Y-%m-%d %H:%M:%S}",
            s["version"],
            f"{s['windows']:,}",
            f"{worst['feature']} {_score(worst)}" if worst else "-",
            _score(s["prediction"]),
            _score(s["confidence"]),
            "[bold red]ALARM[/]" if s["alarm"] else "-",
        )
    return table


def _score(row: dict[str, Any] | None) -> str:
    if row is None or row["score"] is None:
        return "-"
    text = f"{row['score']:.3f} / {row['threshold']:g}"
    return f"[bold]{text}[/]" if row["score"] > row["threshold"] else text
