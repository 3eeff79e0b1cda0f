"""``posture predict``: per-window labels and probabilities for recordings."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from features.errors import PostureError
from posture_cli import read_flags
from posture_cli.console import console, error_console, load_settings, user_errors
from posture_cli.option_flags import fix_with_flags

FORMATS = ("csv", "json", "parquet")


def output_format(out: Path | None, fmt: str | None) -> str:
    """--format, else --out's suffix, else CSV (stdout, or an --out without a suffix: a folder)."""
    if fmt:
        if fmt not in FORMATS:
            raise PostureError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.", "pass csv, json or parquet.")
        return fmt
    suffix = out.suffix.lstrip(".").lower() if out and str(out) != "-" else ""
    if suffix and suffix not in FORMATS:  # x.xlsx got CSV under a name that promised a spreadsheet
        raise PostureError(
            f"--out {out}: predict does not write .{suffix} files.",
            "name it .csv, .json or .parquet, or pass --format csv|json|parquet.",
        )
    return suffix or "csv"


def write_frame(frame: Any, out: Path, fmt: str, header: bool = True) -> None:
    if str(out) == "-":
        frame.to_csv(sys.stdout, index=False, float_format="%.6g", header=header)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(out, index=False, float_format="%.6g")
    elif fmt == "json":
        frame.to_json(out, orient="records", indent=1)
    else:
        frame.to_parquet(out, index=False)


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Folders become the recordings inside them; a missing path is an error now, not later."""
    from pipelines.readers import SUPPORTED_SUFFIXES

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise PostureError(f"No such file or folder: {path}.", "check the path.")
    if not files:
        raise PostureError(
            f"No recordings found in {', '.join(map(str, paths))}.",
            f"give files ending in {', '.join(SUPPORTED_SUFFIXES)}.",
        )
    return files


def predict_file(path: Path, model: Any, options: Any, smooth: bool, max_gap_s: float) -> Any:
    """All recordings in one file -> one frame (with a ``recording`` column when several)."""
    import pandas as pd

    from pipelines.predict import predict_recording
    from pipelines.readers import read_recordings

    frames = []
    recordings = read_recordings(path, options)
    for recording in recordings:
        frame = predict_recording(model, recording, smooth=smooth, max_gap_s=max_gap_s).to_frame()
        if len(recordings) > 1:
            frame.insert(0, "recording", recording.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def print_table(path: Path, frame: Any, hop_s: float) -> None:
    from rich.table import Table

    table = Table(title=str(path))
    for column in ("start", "end", "label", "confidence"):
        table.add_column(column, justify="right" if column != "label" else "left")
    for row in frame.head(200).itertuples():
        table.add_row(f"{row.start:.1f}", f"{row.end:.1f}", str(row.label), f"{row.confidence:.2f}")
    console.print(table)
    if len(frame) > 200:
        console.print(f"... {len(frame) - 200} more windows (use --out to write them all)")
    summary = Table(title="time per label")
    summary.add_column("label")
    summary.add_column("seconds", justify="right")
    summary.add_column("share", justify="right")
    counts = frame["label"].value_counts()
    for label, count in counts.items():
        summary.add_row(str(label), f"{count * hop_s:.0f}", f"{count / len(frame):.0%}")
    console.print(summary)


@user_errors
def predict(
    paths: Annotated[
        list[Path], typer.Argument(help="Recordings (files or folders) in any format `posture ingest` reads.")
    ],
    model_ref: Annotated[
        Optional[str], typer.Option("--model", "-m", help="Model URI, version number or alias (default: the champion).")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Output file ('-' for CSV on stdout); a folder for several inputs."),
    ] = None,
    fmt: Annotated[
        Optional[str],
        typer.Option("--format", "-f", help="csv, json or parquet (default: from --out's extension, else csv)."),
    ] = None,
    smooth: Annotated[
        bool,
        typer.Option(
            "--smooth",
            help="Smooth probabilities with the model's causal forward filter (what the server's smoothed_* fields use).",
        ),
    ] = False,
    column_map: Optional[list[str]] = read_flags.column_map("Column mapping CANONICAL=SOURCE (repeatable)."),
    acc_units: str = read_flags.acc_units("m/s2 or g."),
    gyro_units: str = read_flags.gyro_units("rad/s or deg/s."),
    time_units: Optional[str] = read_flags.time_units("s, ms, us or ns."),
    ts_rate: Optional[float] = read_flags.ts_rate("Sampling rate of .ts files."),
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", help="MLflow tracking URI.")] = None,
) -> None:
    """Label every window of the recordings with the registered model's own preprocessing."""
    from pipelines.registry import load_model, resolve_model_uri

    settings = load_settings(mlflow_tracking_uri=tracking_uri)
    files = expand_inputs(paths)
    if len(files) > 1 and out is not None and str(out) != "-" and out.suffix:
        raise PostureError(f"{len(files)} inputs but --out {out} is one file.", "pass a folder (or '-') as --out.")
    fmt_name = output_format(out, fmt)  # before the model loads: a bad --out fails at once
    model = load_model(resolve_model_uri(model_ref, settings), settings)
    options = read_flags.read_options(
        column_map,
        ts_rate,
        acc_units=acc_units,
        gyro_units=gyro_units,
        time_units=time_units,
        max_gap_s=settings.max_gap_s,
    )
    failures = _run(files, model, options, smooth, settings.max_gap_s, out, fmt_name)
    if failures:
        if len(files) > 1:  # one file's error line says it all
            error_console.print(f"[red]{failures} of {len(files)} file(s) failed[/]")
        raise typer.Exit(1)


def _run(
    files: list[Path], model: Any, options: Any, smooth: bool, max_gap_s: float, out: Path | None, fmt: str
) -> int:
    from rich.progress import Progress

    failures, rows_written = 0, 0
    with Progress(console=error_console, transient=True, disable=len(files) < 2) as progress:
        task = progress.add_task("predicting", total=len(files))
        for path in files:
            try:
                frame = predict_file(path, model, options, smooth, max_gap_s)
            except PostureError as err:
                failures += 1
                said = fix_with_flags(err)
                named = said if str(path) in err.problem else f"{path}: {said}"  # readers name it already
                error_console.print(f"[bold red]error:[/] {named}", highlight=False, soft_wrap=True)
                progress.advance(task)
                continue
            if out is None:
                print_table(path, frame, model.spec.hop_s)
            elif str(out) == "-" or len(files) == 1:
                if len(files) > 1:
                    frame.insert(0, "file", str(path))
                write_frame(frame, out, fmt, header=rows_written == 0)
                rows_written += len(frame)
            else:
                write_frame(frame, out / f"{path.stem}.predictions.{fmt}", fmt)
            progress.advance(task)
    return failures
