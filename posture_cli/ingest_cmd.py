"""``posture ingest``: recordings -> a canonical dataset under the data dir."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from features.errors import PostureError
from posture_cli import read_flags
from posture_cli.console import console, dataset_name, load_settings, print_json, user_errors
from posture_cli.stages import show_stages


@user_errors
def ingest(
    paths: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Files or folders: CSV, Parquet, .ts, Sensor Logger or phyphox exports, UCI HAPT (folder or zip)."
        ),
    ] = None,
    dataset: Annotated[
        Optional[str],
        typer.Option("--dataset", "-d", help="Dataset name (default: 'sample' with --sample, else required)."),
    ] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Build the built-in synthetic sample dataset.")] = False,
    column_map: Optional[list[str]] = read_flags.column_map(
        "Column mapping CANONICAL=SOURCE, e.g. --map ax=accX (repeatable)."
    ),
    acc_units: str = read_flags.acc_units("Accelerometer units: m/s2 or g."),
    gyro_units: str = read_flags.gyro_units("Gyroscope units: rad/s or deg/s."),
    time_units: Optional[str] = read_flags.time_units("Timestamp units: s, ms, us or ns (default: per format)."),
    label: Annotated[Optional[str], typer.Option("--label", help="Label for every row that has none.")] = None,
    subject: Annotated[Optional[str], typer.Option("--subject", help="Subject for every row that has none.")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", help="Resample to this rate in Hz (default 50).")] = None,
    ts_rate: Optional[float] = read_flags.ts_rate("Sampling rate of .ts files, which carry no timestamps."),
    max_gap: Annotated[
        Optional[float], typer.Option("--max-gap", help="Gaps longer than this (s) split a recording.")
    ] = None,
    hapt_transitions: Annotated[
        Literal["keep", "drop"],
        typer.Option(
            "--hapt-transitions",
            help="UCI HAPT postural transitions (stand_to_sit ...): drop (leave unlabelled) or keep as labels.",
        ),
    ] = "drop",
    data_dir: Annotated[
        Optional[Path], typer.Option("--data-dir", help="Where datasets go (POSTURE_DATA_DIR).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Read recordings, validate and resample them, and write a Parquet dataset with a manifest."""
    from pipelines.orchestration import run_flow, start_prefect_api

    # Before Prefect is imported: it reads its logging level (CRITICAL, set here) once, at import;
    # else a failed flow's traceback is logged above the one-line error. Also overlaps the API's
    # start with the imports and work below.
    start_prefect_api()
    from pipelines.ingest import IngestRequest, ingest_flow

    if not paths and not sample:
        raise typer.BadParameter("give recordings to ingest, or --sample for the built-in sample dataset")
    if not dataset and not sample:
        raise typer.BadParameter("name the dataset with --dataset NAME")
    if rate is not None and not rate > 0:  # also refuses NaN
        raise PostureError(f"--rate must be a positive number of Hz, got {rate:g}.", "pass e.g. --rate 50.")
    settings = load_settings(data_dir=data_dir, rate_hz=rate, max_gap_s=max_gap)
    name = dataset_name(dataset or "sample")
    request = IngestRequest(
        paths=[str(p) for p in paths or []],
        dataset_dir=str(settings.dataset_dir(name)),
        rate_hz=settings.rate_hz,
        read_options=read_flags.read_options(
            column_map,
            ts_rate,
            acc_units=acc_units,
            gyro_units=gyro_units,
            time_units=time_units,
            label=label,
            subject=subject,
            max_gap_s=settings.max_gap_s,
            keep_transitions=hapt_transitions == "keep",
        ),
        sample=sample,
    )
    with show_stages("ingest", enabled=not as_json):
        manifest = run_flow(ingest_flow, request=request)
    if as_json:
        print_json(manifest)
    else:
        _print_summary(manifest, request.dataset_dir)
    if manifest["rejected_files"]:
        raise typer.Exit(1)


def _print_summary(manifest: dict, dataset_dir: str) -> None:
    from rich.table import Table

    table = Table(title=f"dataset {manifest['name']}" + (" (synthetic)" if manifest.get("synthetic") else ""))
    table.add_column("label")
    table.add_column("seconds", justify="right")
    for label, seconds in manifest["seconds_per_label"].items():
        table.add_row(str(label), f"{seconds:.0f}")
    console.print(table)
    console.print(
        f"{len(manifest['recordings'])} recordings, {len(manifest['subjects'])} subjects, "
        f"{manifest['duration_s']:.0f} s at {manifest['rate_hz']:g} Hz, channels {','.join(manifest['channels'])}"
    )
    rejected = manifest["rejected_rows"]
    if rejected:
        console.print(f"[yellow]{sum(r['count'] for r in rejected)} rows rejected[/] (see manifest.json):")
        for r in rejected[:10]:
            console.print(f"  {r['source']}: {r['count']} x {r['reason']} (rows {r['rows'][:5]}...)", highlight=False)
    for why in manifest["rejected_files"].values():  # each names its path
        console.print(f"[red]skipped[/] {why}", highlight=False)
    console.print(f"written to {dataset_dir}")
